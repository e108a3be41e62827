"""Run every voxseg benchmark, one after the other, each printing its table with ratios against the
baseline it measures in the same run.

Run: ``python benchmarks/run.py [--quick]`` (``--quick`` passes ``--quick`` to the benchmarks that have
a smaller variant and skips the 1024^3 chunked run).
"""

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (script, arguments, arguments with --quick); a script that is missing is skipped
BENCHMARKS = [
    ("bench_accuracy.py", [], []),
    ("bench_segment.py", [], []),
    ("bench_measure.py", [], ["--quick"]),
    ("bench_operators.py", [], ["--repeat", "1"]),
    ("bench_batch.py", [], []),
    ("bench_chunked.py", [], ["--quick"]),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller variants where there are some")
    args = parser.parse_args()
    failed = []
    for script, full, quick in BENCHMARKS:
        path = HERE / script
        if not path.exists():
            continue
        command = [sys.executable, str(path), *(quick if args.quick else full)]
        print(f"\n=== {script} {' '.join(command[2:])}", flush=True)
        if subprocess.run(command).returncode != 0:
            failed.append(script)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
        sys.exit(1)


if __name__ == "__main__":
    main()
