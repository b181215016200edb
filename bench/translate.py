"""Multi30k German->English: train each encoder-decoder variant within a wall-clock budget, then
report parameters, wall time, validation/test perplexity and sacreBLEU (greedy and beam).

    python bench/translate.py [--minutes 90] [--variants additive,none] [--out runs/translate]

One run folder per variant (out/<variant>); a folder that already holds checkpoints is resumed.
Reference (bentrevett/pytorch-seq2seq, word-level spaCy tokens, lowercased, torchtext BLEU):
BiGRU + Bahdanau attention, 20.5M parameters, test PPL 25.6, BLEU 28.3; GRU without attention,
BLEU 20.6. Perplexities here are per SentencePiece subword, so they are not comparable to those.
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")   # small matrices: one BLAS thread is faster than several sharing cores

import argparse  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from rnnkit.tasks.translate import (TranslateConfig, default_path, load_translator, perplexity,  # noqa: E402
                                    read_parallel, train_translate)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=90.0, help="training budget per variant (default 90)")
    p.add_argument("--variants", default="additive,none", help="comma-separated: additive, dot, general, none")
    p.add_argument("--out", default="runs/translate", help="parent run folder (default runs/translate)")
    p.add_argument("--beam", type=int, default=5, help="beam width for the beam BLEU (default 5)")
    p.add_argument("--max-steps", type=int, default=TranslateConfig.max_steps, help="cap on optimizer steps")
    p.add_argument("--eval-every", type=int, default=TranslateConfig.eval_every, help="steps between validations")
    args = p.parse_args()
    sys.stdout.reconfigure(line_buffering=True)          # progress shows in a log file as it happens
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    test_src, test_ref = read_parallel(default_path("test_2016_flickr", "de"), default_path("test_2016_flickr", "en"),
                                       "test")
    val_src, val_ref = read_parallel(default_path("val", "de"), default_path("val", "en"), "validation")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores (shared), numpy float32")
    rows = []
    for v in variants:
        out = Path(args.out) / v
        print(f"\n== {v}: rnnkit train translate --attention {v} --seconds {args.minutes * 60:g} "
              f"--max-steps {args.max_steps} --eval-every {args.eval_every} --out {out}")
        t0 = time.perf_counter()
        report = train_translate(TranslateConfig(out_dir=str(out), attention=v, seconds=args.minutes * 60,
                                                 max_steps=args.max_steps, eval_every=args.eval_every))
        train_wall = time.perf_counter() - t0
        tr = load_translator(out)
        sw = tr.subwords
        test_ppl = perplexity(tr.model, sw.encode_src(test_src), sw.encode_tgt(test_ref))["ppl"]
        t1 = time.perf_counter()
        greedy = tr.bleu(test_src, test_ref, beam=1)
        t2 = time.perf_counter()
        beam = tr.bleu(test_src, test_ref, beam=args.beam)
        t3 = time.perf_counter()
        val_beam = tr.bleu(val_src, val_ref, beam=args.beam)
        rows.append((v, report, train_wall, test_ppl, greedy, beam, val_beam))
        print(f"{v}: {report.parameters:,} parameters; {report.steps} steps, {report.epochs} epochs, "
              f"{report.train_seconds / 60:.1f} min training in all (resumes included); this invocation "
              f"{train_wall / 60:.1f} min wall with data and subwords")
        print(f"{v}: perplexity per subword: validation {report.valid_ppl:.2f}, test {test_ppl:.2f}")
        print(f"{v}: test sacreBLEU greedy {greedy['bleu']:.2f} (lowercased {greedy['bleu_lc']:.2f}) "
              f"in {t2 - t1:.0f} s; "
              f"beam {args.beam} {beam['bleu']:.2f} (lowercased {beam['bleu_lc']:.2f}) in {t3 - t2:.0f} s; "
              f"validation beam {val_beam['bleu']:.2f}")
        for s, h, r in list(zip(test_src, beam["hypotheses"], test_ref))[:3]:
            print(f"   {s}\n   -> {h}\n   ref {r}")
    print("\n| variant | parameters | training | steps | val PPL | test PPL | test BLEU greedy | test BLEU beam "
          f"{args.beam} | lowercased |")
    print("|---|---|---|---|---|---|---|---|---|")
    for v, rep, wall, tppl, g, b, _ in rows:
        print(f"| {v} | {rep.parameters / 1e6:.1f}M | {rep.train_seconds / 60:.1f} min | {rep.steps} | "
              f"{rep.valid_ppl:.2f} | {tppl:.2f} | {g['bleu']:.2f} | {b['bleu']:.2f} | {b['bleu_lc']:.2f} |")
    print(f"goal: attention test BLEU >= 28.3 (bentrevett notebook 3); without attention 20.6\n"
          f"reproduce: python bench/translate.py --minutes {args.minutes:g} --variants {','.join(variants)} "
          f"--max-steps {args.max_steps} --eval-every {args.eval_every} --out {args.out}")


if __name__ == "__main__":
    main()
