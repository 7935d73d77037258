"""Unit tests of the harness's own accounting (run by tests/integration/bench_harness.rs)."""
import subprocess
import sys
import time
import unittest

from modbench import core


class ProcTicks(unittest.TestCase):
    def test_a_finished_childs_cpu_is_the_servers(self):
        # A "server" that runs a busy child to completion (as Athens runs `go mod download`),
        # then idles: the child's CPU must show in the server's ticks.
        server = subprocess.Popen([sys.executable, "-c", (
            "import subprocess, sys, time\n"
            "subprocess.run([sys.executable, '-c', "
            "'import time\\nwhile time.process_time() < 0.5: pass'])\n"
            "print('done', flush=True)\n"
            "time.sleep(30)\n")], stdout=subprocess.PIPE, text=True)
        try:
            self.assertEqual(server.stdout.readline().strip(), "done")
            ticks = core.proc_ticks(server.pid)
            # 0.5 s of the child's CPU (however busy the machine); the server itself idled.
            self.assertGreaterEqual(ticks, int(0.35 * core.CLK_TCK), ticks)
        finally:
            server.kill()
            server.wait()
            server.stdout.close()

    def test_an_absent_process_has_no_ticks(self):
        p = subprocess.Popen([sys.executable, "-c", "pass"])
        p.wait()
        time.sleep(0.05)
        self.assertEqual(core.proc_ticks(p.pid), 0)


if __name__ == "__main__":
    unittest.main()
