"""Each rule's measured wall time and peak memory beside what config `resources` asks for.

    python bench/rule_costs.py                                        # results/ of config.yaml
    python bench/rule_costs.py --configfile configs/sweep_demo.yaml   # its results/sweep_demo/
    python bench/rule_costs.py --csv costs.csv

Reads the Snakemake benchmark every rule writes (<results>/benchmarks/, affine_icl/costs.py),
prints one Markdown row per rule (jobs, median and longest seconds, largest peak RSS, the
request) and exits 1 when a rule's jobs went over their memory or runtime, naming them: raise
those in `resources` before a cluster kills the jobs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml
from snakemake.utils import update_config

from affine_icl.costs import read_benchmarks, rule_costs
from affine_icl.render import to_markdown
from affine_icl.validation import REPO_ROOT, validate_config


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--configfile", nargs="*", default=[], help="merged over config.yaml, as Snakemake does"
    )
    parser.add_argument("--results", help="results directory (default: the config's `results`)")
    parser.add_argument("--csv", type=Path, help="also write the table here")
    args = parser.parse_args()

    config = yaml.safe_load((REPO_ROOT / "config.yaml").read_text())
    for path in args.configfile:
        update_config(config, yaml.safe_load(Path(path).read_text()) or {})
    validate_config(config)
    results = Path(args.results or config["results"])
    costs = rule_costs(read_benchmarks(results / "benchmarks"), config)
    if args.csv:
        costs.to_csv(args.csv, index=False)
    print(f"Measured in {results / 'benchmarks'} against config resources:\n")
    print(to_markdown(costs.round(1)))
    over = costs.loc[~costs["fits"], "rule"].tolist()
    if over:
        print(f"\nover their request (raise resources.<rule>): {', '.join(over)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
