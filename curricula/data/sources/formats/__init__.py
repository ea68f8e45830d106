"""Format converters: markup of one file (or one record) to plain text. No file walking, no packages.

- :mod:`.html`: HTML to text with the standard library's ``html.parser`` (Sphinx and DocBook pages)
- :mod:`.rest`: reST / MyST sources (``.. raw::`` blocks dropped)
- :mod:`.pod`: Perl POD (formatting codes resolved)
- :mod:`.man`: man(7) pages rendered with groff, output tidied
- :mod:`.osis`: OSIS Bible markup and ``mod2imp`` output
- :mod:`.plain`: small plain formats: fortune files, YAML front matter, chit-chat JSON, GNU Info, HTML comments
"""

from curricula.data.sources.formats.html import SPHINX_SKIP, html_to_text, is_sphinx_main
from curricula.data.sources.formats.man import GROFF_CMD, clean_man_output, render_man_page
from curricula.data.sources.formats.osis import osis_to_text, parse_imp
from curricula.data.sources.formats.plain import (
    chitchat_to_text,
    info_nodes,
    split_fortunes,
    strip_front_matter,
    strip_html_comments,
)
from curricula.data.sources.formats.pod import pod_inline, pod_to_text
from curricula.data.sources.formats.rest import clean_rest, rest_body_chars

__all__ = [
    "GROFF_CMD",
    "SPHINX_SKIP",
    "chitchat_to_text",
    "clean_man_output",
    "clean_rest",
    "html_to_text",
    "info_nodes",
    "is_sphinx_main",
    "osis_to_text",
    "parse_imp",
    "pod_inline",
    "pod_to_text",
    "render_man_page",
    "rest_body_chars",
    "split_fortunes",
    "strip_front_matter",
    "strip_html_comments",
]
