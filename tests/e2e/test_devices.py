"""Booted-guest tests of the virtio devices (issue 3): the guest writes a disk, reads entropy."""
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest import GuestTestCase, boot  # noqa: E402


def make_ext2(path, size_mib=32):
    with open(path, "wb") as f:
        f.truncate(size_mib << 20)
    subprocess.run(["mkfs.ext2", "-q", "-F", path], check=True)


def debugfs_cat(image, name):
    r = subprocess.run(["debugfs", "-R", f"cat {name}", image], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, check=True)
    return r.stdout.decode()


class VirtioBlk(GuestTestCase):
    def test_guest_writes_files_host_finds_them(self):
        with tempfile.TemporaryDirectory() as d:
            img = os.path.join(d, "disk.img")
            make_ext2(img)
            r = boot("mount -t ext2 /dev/vda /mnt && echo written-by-guest > /mnt/hello.txt && "
                     "dd if=/dev/zero of=/mnt/big bs=1M count=4 2>/dev/null && sync && umount /mnt && echo SYNCED",
                     extra_args=["--disk", img])
            self.assertBooted(r)
            self.assertIn("SYNCED", r.command_output())
            self.assertEqual(debugfs_cat(img, "hello.txt"), "written-by-guest\n")
            self.assertEqual(len(subprocess.run(["debugfs", "-R", "cat big", img], stdout=subprocess.PIPE,
                                                stderr=subprocess.DEVNULL).stdout), 4 << 20)

    def test_read_only_disk_refuses_writes(self):
        with tempfile.TemporaryDirectory() as d:
            img = os.path.join(d, "ro.img")
            with open(img, "wb") as f:
                f.write(b"\xab" * (1 << 20))
            r = boot("head -c 4 /dev/vda | od -An -tx1; cat /sys/block/vda/ro; "
                     "dd if=/dev/zero of=/dev/vda bs=512 count=1 2>&1; echo dd-status=$?",
                     extra_args=["--disk", img + ",ro"])
            self.assertBooted(r)
            out = r.command_output()
            self.assertIn("ab ab ab ab", out)
            self.assertIn("\n1\n", "\n" + out)
            self.assertNotIn("dd-status=0", out)
            with open(img, "rb") as f:
                self.assertEqual(f.read(512), b"\xab" * 512)

    def test_missing_disk_image_is_a_clear_error(self):
        r = boot("true", extra_args=["--disk", "/nonexistent/disk.img"])
        self.assertEqual(r.rc, 1)
        self.assertIn("/nonexistent/disk.img", r.err)


class VirtioRng(GuestTestCase):
    def test_hwrng_gives_bytes(self):
        r = boot("cat /sys/class/misc/hw_random/rng_current; dd if=/dev/hwrng bs=64 count=1 2>/dev/null | od -An -tx1 | tr -d ' \\n'; echo",
                 extra_args=["--rng"])
        self.assertBooted(r)
        lines = r.command_output().split()
        self.assertTrue(lines[0].startswith("virtio_rng"), lines)
        hexbytes = lines[-1]
        self.assertEqual(len(hexbytes), 128, lines)
        self.assertNotEqual(hexbytes, "0" * 128)


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


NET_UP = "ip link set eth0 up; udhcpc -q -n -i eth0 >/dev/null 2>&1; "


class VirtioNet(GuestTestCase):
    def test_guest_fetches_page_from_host_loopback(self):
        import http.server
        import threading
        token = os.urandom(8).hex()
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "page.txt"), "w") as f:
                f.write(f"page-{token}\n")
            handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=d, **k)  # noqa: E731
            server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
            port = server.server_address[1]
            t = threading.Thread(target=server.serve_forever, daemon=True)
            t.start()
            try:
                r = boot(NET_UP + f"wget -q -O - http://10.0.2.2:{port}/page.txt; ip -4 addr show eth0 | grep -o 'inet [0-9.]*'",
                         extra_args=["--net", "user"])
            finally:
                server.shutdown()
                server.server_close()
        self.assertBooted(r)
        out = r.command_output()
        self.assertIn(f"page-{token}", out)
        self.assertIn("inet 10.0.2.15", out)

    def test_host_reaches_guest_through_port_forward(self):
        import socket
        import threading
        import time
        port = free_port()
        got = {}

        def client():
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=2) as c:
                        c.settimeout(5)
                        data = c.recv(100)
                        if data:
                            got["data"] = data
                            return
                except OSError:
                    pass
                time.sleep(0.5)

        t = threading.Thread(target=client, daemon=True)
        t.start()
        r = boot(NET_UP + "echo hello-from-guest | nc -l -p 8000 -w 20; echo served",
                 extra_args=["--net", "user", "--hostfwd", f"{port}:8000"])
        t.join(timeout=10)
        self.assertBooted(r)
        self.assertEqual(got.get("data", b"").strip(), b"hello-from-guest")

    def test_bad_net_arguments(self):
        r = boot("true", extra_args=["--net", "bogus"])
        self.assertEqual(r.rc, 1)
        self.assertIn("--net takes user or tap=IFNAME", r.err)
        r = boot("true", extra_args=["--hostfwd", "80:80"])
        self.assertEqual(r.rc, 1)
        self.assertIn("needs a --net user NIC", r.err)


class VirtioConsole(GuestTestCase):
    def test_guest_writes_hvc1(self):
        cmd = "echo via-virtio-console > /dev/hvc1; echo rc=$?"
        r = boot(cmd, extra_args=["--virtio-console"])
        self.assertBooted(r)
        self.assertIn("via-virtio-console", r.out)
        self.assertIn("rc=0", r.command_output())
        # Without the device the same write has nowhere to go: the text came through virtio.
        r = boot(cmd)
        self.assertBooted(r)
        self.assertNotIn("via-virtio-console", r.out)
        self.assertNotIn("rc=0", r.command_output())


if __name__ == "__main__":
    unittest.main()
