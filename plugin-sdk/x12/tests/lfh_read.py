"""Reads each X12 file given on the command line with linuxforhealth-x12 and
prints one line per file: "OK <path> <transaction count>" or
"FAIL <path>: <error>". Run by tests/peers.rs with the workspace .venv."""
import sys

from linuxforhealth.x12.io import X12ModelReader


def main() -> int:
    for path in sys.argv[1:]:
        try:
            with X12ModelReader(path) as reader:
                models = list(reader.models())
            print(f"OK {path} {len(models)}")
        except Exception as exc:  # noqa: BLE001 - report every failure kind
            print(f"FAIL {path}: {type(exc).__name__}: {exc}".replace("\n", " "))
    return 0


if __name__ == "__main__":
    sys.exit(main())
