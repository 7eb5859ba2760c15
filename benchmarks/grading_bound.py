"""Time answer extraction and grading on adversarial solutions: linear in the text length, bounded by the timeout.

Before issue 9 item 8, extraction fell back from an unclosed last ``\\boxed{`` to the one before it, and so on:
quadratic in the number of unclosed boxes (20,000 characters took 254 s). Now extraction is one scan, and one
time limit (``grading_timeout``) covers extraction and the math-verify comparison together.

    python benchmarks/grading_bound.py                     # a table on stdout
    python benchmarks/grading_bound.py --out grading.json  # and the numbers as JSON
"""

from __future__ import annotations

import argparse
import json
import time

from bestofn.grading import find_answer, grade

CASES = {
    "unclosed \\boxed{ repeated": lambda n: "\\boxed{" * (n // 7),
    "one box, deep braces": lambda n: "\\boxed{" + "{" * (n - 7),
    "closed boxes, last unclosed": lambda n: "\\boxed{1} " * (n // 10 - 1) + "\\boxed{2",
    "long closed answer": lambda n: "\\boxed{" + "x+" * ((n - 8) // 2) + "}",
}


def best_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lengths", default="20000,100000,1000000", help="text lengths in characters")
    p.add_argument("--timeout", type=float, default=5, help="grading_timeout in seconds")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", help="write the numbers as JSON here")
    args = p.parse_args()
    grade("\\boxed{1}", "1")  # import math-verify (sympy) before timing anything
    rows = []
    print(f"{'case':<30} {'chars':>9} {'extract s':>10} {'grade s':>9}  status")
    for name, make in CASES.items():
        for n in (int(x) for x in args.lengths.split(",")):
            text = make(n)
            extract = best_time(lambda: find_answer(text), args.repeats)
            graded = {}
            total = best_time(lambda: graded.update(grade(text, "1", args.timeout)), 1)
            rows.append({"case": name, "chars": len(text), "extract_s": extract, "grade_s": total,
                         "answer_status": graded["answer_status"]})
            print(f"{name:<30} {len(text):>9,} {extract:>10.4f} {total:>9.3f}  {graded['answer_status']}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"timeout_s": args.timeout, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
