import socket

from devstack.embedded import free_port, port_is_free


def test_a_listening_port_is_taken_and_a_stopped_servers_lingering_connections_do_not_count():
    port = free_port()
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen()
    assert not port_is_free(port)

    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = server.accept()
    conn.close()  # the server side closes first: its socket on ``port`` lingers in TIME_WAIT
    client.recv(1)
    client.close()
    server.close()

    assert port_is_free(port)  # as after make run stopped: its Airflow port is free for the next start
