"""``thrifty upcycle SEED_RUN SPECIALIST_RUN... --method btx|bam|bam-kv --out RUN``: mix dense
specialists branched from one seed into a mixture-of-experts run.

Methods (expert i of every layer comes from specialist i; routers are fresh, drawn with --seed):

  btx     MoE FFN experts from the specialists' FFNs; attention, norms and embeddings averaged
          (Branch-Train-MiX, Sukhbaatar et al. 2024)
  bam     also soft mixture-of-attention experts from the specialists' attention (BAM,
          Zhang et al. 2024)
  bam-kv  as bam, with W_K and W_V averaged and shared, W_Q and W_O per expert

The specialists are usually `thrifty train ... train.init_from=SEED_RUN` runs on one domain each;
they must share the seed's model section (its block layout is kept: BAM's is
model.block=parallel), objective and tokenizer. The ledger charges every specialist, and the
seed's words once. Continue the mixture on the union of the domains with the config it writes:

  thrifty upcycle runs/seed runs/code runs/prose runs/chat --method bam --out runs/bam
  thrifty train runs/bam/config.yaml name=bam-mix data.path=data/union train.max_steps=2000

(its train.init_from already names runs/bam; with another config, copy its model section and
pass train.init_from=runs/bam).
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "upcycle",
        help="mix dense specialist runs into a mixture-of-experts run (BTX, BAM)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("seed_run", metavar="SEED_RUN", help="the run the specialists branched from")
    # zero specialists is the library's one-line error, not argparse's usage dump
    p.add_argument(
        "specialists", nargs="*", metavar="SPECIALIST_RUN", help="run or checkpoint folders"
    )
    p.add_argument("--method", required=True, help="btx, bam or bam-kv")
    p.add_argument("--out", required=True, help="the mixture's run folder")
    p.add_argument("--top-k", type=int, default=2, help="FFN experts per token (default 2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the routers' init (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from thrifty.data.budget import Ledger
    from thrifty.train.upcycle import upcycle

    out = upcycle(
        args.seed_run,
        args.specialists,
        args.out,
        method=args.method,
        top_k=args.top_k,
        seed=args.seed,
        overwrite=args.overwrite,
    )
    ledger = Ledger.load(out)
    print(
        f"wrote {out}: {args.method} mixture of {len(args.specialists)} experts; the ledger "
        f"charges {ledger.charged_words():,} words. Continue it with: thrifty train "
        f"{out}/config.yaml name=NAME data.path=DATA"
    )
    return 0
