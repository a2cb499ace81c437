#!/usr/bin/env python3
"""Send a signed tinyrnn blob to a real board running `<board>-ota` (boards/REAL_BOARDS.md).

    python3 tools/scripts/send_blob.py /dev/ttyACM0 model.signed.trnn [--baud 115200]

Standard library only (termios: Linux/macOS). The protocol is the one of
boards/board-support/src/ota.rs: b"TRNU" + the length as u32 little-endian; the board
answers `>` for every 64-byte block it wants; it ends with `ota ok version=<v>` or
`ota err <reason>`. Exit status 0 on `ota ok`, 1 otherwise (one `error:` line).
"""

import argparse
import os
import select
import struct
import sys
import termios
import time

MAGIC = b"TRNU"
BLOCK = 64
HEADER_RETRY_S = 0.1
TIMEOUT_S = 10.0
BAUDS = {9600: termios.B9600, 57600: termios.B57600, 115200: termios.B115200}


def open_port(path, baud):
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    attrs = termios.tcgetattr(fd)
    attrs[0] = 0  # iflag: raw
    attrs[1] = 0  # oflag: raw
    attrs[2] = termios.CS8 | termios.CREAD | termios.CLOCAL  # 8N1
    attrs[3] = 0  # lflag: no echo, no canonical mode
    attrs[4] = attrs[5] = BAUDS[baud]
    attrs[6][termios.VMIN] = 0
    attrs[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, attrs)
    termios.tcflush(fd, termios.TCIOFLUSH)
    return fd


def read_byte(fd, timeout):
    ready, _, _ = select.select([fd], [], [], timeout)
    if not ready:
        return None
    b = os.read(fd, 1)
    return b or None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("port")
    ap.add_argument("blob")
    ap.add_argument("--baud", type=int, default=115200, choices=sorted(BAUDS))
    args = ap.parse_args()
    try:
        with open(args.blob, "rb") as f:
            blob = f.read()
        if not blob.startswith(b"TRNS"):
            raise RuntimeError(f"{args.blob} is not a signed envelope (run `tinyrnn sign` first)")
        fd = open_port(args.port, args.baud)
    except (OSError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    header = MAGIC + struct.pack("<I", len(blob))
    sent = 0
    started = False
    deadline = time.monotonic() + TIMEOUT_S
    os.write(fd, header)
    line = b""
    while time.monotonic() < deadline:
        b = read_byte(fd, HEADER_RETRY_S)
        if b is None:
            if not started:
                os.write(fd, header)  # lost while the board computed a frame: resend
            continue
        if b == b">":
            started = True
            block = blob[sent : sent + BLOCK]
            os.write(fd, block)
            sent += len(block)
            deadline = time.monotonic() + TIMEOUT_S
            print(f"\r{sent}/{len(blob)} bytes", end="", file=sys.stderr)
            continue
        line += b
        if b == b"\n":
            text = line.decode("ascii", "replace").strip()
            print(file=sys.stderr)
            if text.startswith("ota ok"):
                print(text)
                return 0
            if text.startswith("ota err"):
                print(f"error: the board refused the blob: {text[len('ota err '):]}", file=sys.stderr)
                return 1
            line = b""
    print("error: no answer from the board (is `<board>-ota` running on this port?)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
