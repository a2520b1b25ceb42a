"""Redis servers with linattn_redis.so loaded, on free loopback ports, for the module's tests.

Each server is a child process in its own directory, stopped (SHUTDOWN NOSAVE, then SIGKILL)
when the test ends, whatever its outcome. Clients name 127.0.0.1, never "localhost": a fresh
root without /etc/hosts would look that name up in DNS on every connection."""
import os
import shutil
import socket
import subprocess
import time

import pytest
import redis

MODULE = os.environ.get("LINATTN_REDIS_MODULE")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    def __init__(self, directory, *args):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.port = free_port()
        self.args = list(args)
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
             "--loadmodule", MODULE, "--save", "", "--logfile", os.path.join(self.dir, "redis.log"), *self.args])
        deadline = time.time() + 20
        while True:
            try:
                if redis.Redis(host="127.0.0.1", port=self.port).ping():
                    return
            except redis.exceptions.ConnectionError:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError("redis-server did not start: " + self.log())
                time.sleep(0.02)

    def client(self, **kw):
        return redis.Redis(host="127.0.0.1", port=self.port, **kw)

    def log(self):
        try:
            return open(os.path.join(self.dir, "redis.log")).read()[-3000:]
        except OSError:
            return ""

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            try:
                self.client().shutdown(nosave=True)
            except redis.exceptions.ConnectionError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill9()


@pytest.fixture
def nodes(tmp_path):
    if not MODULE or not shutil.which("redis-server"):
        pytest.skip("linattn_redis.so or redis-server missing (LINATTN_REDIS_MODULE unset)")
    started = []

    def make(name="node", *args):
        n = Node(str(tmp_path / name), *args)
        started.append(n)
        return n

    yield make
    for n in started:
        n.stop()
