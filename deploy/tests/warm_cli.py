"""A warm AWS CLI for the tests. The scripts make some 150 `aws` calls per test run, and
starting the CLI (Python, botocore, awscli's commands) takes about half a second each: most of
the suite's time. `serve` imports the CLI once and, for each call, forks a process that runs
the CLI's own entry point (`awscli.clidriver.main`) with the caller's arguments, environment,
working directory and standard streams, as a fresh `aws` process would; `call` is the `aws`
the scripts run (a launcher made by conftest.py starts it without site-packages, in a few
tens of milliseconds). Kept out of it: nothing the CLI does, only its start-up.
"""

import json
import os
import socket
import sys
import traceback

SOCKET_VARIABLE = "CRUCIAL_WARM_AWS_SOCKET"
LENGTH_BYTES = 8
STATUS_BYTES = 4
STREAMS = 3  # standard input, output and error


def receive_exactly(connection, size):
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the other side closed the connection early")
        data += chunk
    return data


def call():
    """The `aws` command: hands this call, with this process's standard streams, to the
    server, and exits with the CLI's status."""
    request = json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
    with socket.socket(socket.AF_UNIX) as connection:
        connection.connect(os.environ[SOCKET_VARIABLE])
        socket.send_fds(connection, [len(request).to_bytes(LENGTH_BYTES, "big")], list(range(STREAMS)))
        connection.sendall(request)
        status = receive_exactly(connection, STATUS_BYTES)
    sys.exit(int.from_bytes(status, "big", signed=True))


def serve(socket_path):
    """Answers calls one at a time (the scripts make them one at a time) until killed."""
    before = dict(os.environ)
    from awscli import clidriver  # the slow part, once

    # What importing the CLI sets in the environment (AWS_DATA_PATH, where its own data is):
    # a fresh process would have it too.
    cli_variables = {name: value for name, value in os.environ.items() if before.get(name) != value}
    with socket.socket(socket.AF_UNIX) as listener:
        # Bound and listening before the path appears: whoever sees it can connect.
        listener.bind(f"{socket_path}.binding")
        listener.listen()
        os.rename(f"{socket_path}.binding", socket_path)
        while True:
            connection, _ = listener.accept()
            with connection:
                try:
                    serve_one(connection, listener, clidriver, cli_variables)
                except (OSError, ValueError) as error:  # a caller gone or garbled: the next one counts
                    print(f"warm_cli: dropped a call: {error}", file=sys.stderr)


def serve_one(connection, listener, clidriver, cli_variables):
    header, streams, _, _ = socket.recv_fds(connection, LENGTH_BYTES, STREAMS)
    header += receive_exactly(connection, LENGTH_BYTES - len(header))
    request = json.loads(receive_exactly(connection, int.from_bytes(header, "big")))
    child = os.fork()
    if child == 0:
        listener.close()
        connection.close()
        run_cli(request, streams, clidriver, cli_variables)
    for stream in streams:
        os.close(stream)
    _, wait_status = os.waitpid(child, 0)
    connection.sendall(os.waitstatus_to_exitcode(wait_status).to_bytes(STATUS_BYTES, "big", signed=True))


def run_cli(request, streams, clidriver, cli_variables):
    """In the forked process: becomes the caller's `aws` process, runs the CLI, exits."""
    status = 255
    try:
        for target, stream in enumerate(streams):
            os.dup2(stream, target)
            os.close(stream)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"], **cli_variables)
        sys.argv = ["aws", *request["argv"]]
        status = clidriver.main()
    except SystemExit as exit_request:
        status = exit_request.code if isinstance(exit_request.code, int) else int(exit_request.code is not None)
    except BaseException:  # the CLI's own failure: shown, as a fresh process would show it
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except OSError:  # the caller stopped reading
                pass
        # Never back into the server's loop, whatever happened.
        os._exit(status if isinstance(status, int) else 255)


if __name__ == "__main__":
    serve(sys.argv[1])
