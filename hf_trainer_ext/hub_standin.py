"""A tiny local stand-in for the Hugging Face Hub, enough for ``create_repo`` + ``upload_folder`` and for
``snapshot_download`` / ``hf_hub_download`` to pull the files back (huggingface_hub 2.4, ``HF_HUB_DISABLE_XET=1``).

stdlib only; bound to 127.0.0.1 on an ephemeral port; every upload is answered ``uploadMode: "regular"``, so
file contents arrive base64-encoded inside the commit NDJSON and no LFS / Xet transfer is needed.

Routes served (everything else: 404, recorded in ``unhandled``):
    POST /api/repos/create                          {"name","organization"} -> {"url": ...}
    POST /api/validate-yaml                         -> {"errors": [], "warnings": []}
    POST /api/models/{ns}/{name}/preupload/{rev}    -> every file "regular"
    POST /api/models/{ns}/{name}/commit/{rev}       NDJSON header + file lines -> {"commitUrl", "commitOid"}
    GET  /api/models/{ns}/{name}[/revision/{rev}]   repo info with sha + siblings
    GET  /api/models/{ns}/{name}/tree/{rev}[/path]  file listing (recursive)
    HEAD/GET /{ns}/{name}/resolve/{rev}/{path}      file bytes with ETag / X-Repo-Commit headers

Trainer's own push (transformers 5.x: ``init_hf_repo`` -> ``create_repo``; ``push_to_hub`` and
``_push_from_checkpoint`` -> ``upload_folder``, also with ``path_in_repo`` and ``run_as_future=True``) uses only these
routes, through ``transformers.utils.hub.hf_api()``, a cached ``HfApi`` that tests replace with one bound to
``endpoint`` (see tests/hf_trainer_ext/test_hub.py ``trainer_hub``). ``curricula hub-standin`` serves one for a local try of
``curricula push --endpoint``.

Requests are logged in ``requests`` (method, path, headers WITHOUT Authorization); Authorization headers are kept
apart in ``auth_headers`` so a test can check the token was sent while the log itself never holds it.

``HubStandIn(refuse=401)`` (or 403) answers every request with that status and the Hub's error body, as the Hub does
for an invalid token (401) or one without write access (403); ``echo_auth=True`` puts the request's Authorization
header into that error message, so a test can check that the client's error text is scrubbed of the token.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


def git_blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class HubState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.repos: dict[str, dict] = {}  # repo_id -> {"private": bool, "files": {path: bytes}, "sha": str}
        self.commits: list[dict] = []  # {"repo_id", "summary", "paths"}
        self.requests: list[dict] = []  # {"method", "path", "headers"} (no Authorization)
        self.auth_headers: list[str] = []
        self.unhandled: list[str] = []
        self.refuse: int | None = None  # answer every request with this status (401, 403)
        self.echo_auth = False


class _Handler(BaseHTTPRequestHandler):
    server_version = "hub-standin/1"
    protocol_version = "HTTP/1.1"

    @property
    def state(self) -> HubState:
        return self.server.state  # type: ignore[attr-defined]

    def log_message(self, format, *args):  # noqa: A002 - silence stderr; the state keeps the log
        pass

    # --- helpers -------------------------------------------------------------------------------------------------
    def _record(self) -> None:
        headers = {k: v for k, v in self.headers.items() if k.lower() != "authorization"}
        with self.state.lock:
            self.state.requests.append({"method": self.command, "path": self.path, "headers": headers})
            if self.headers.get("Authorization") is not None:
                self.state.auth_headers.append(self.headers["Authorization"])

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            data = b"".join(parts)
        else:
            data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            data = gzip.decompress(data)
        return data

    def _send(self, status: int, payload=None, body: bytes | None = None, headers: dict | None = None,
              head: bool = False) -> None:
        if body is None:
            body = json.dumps(payload if payload is not None else {}).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _not_found(self, head: bool = False) -> None:
        with self.state.lock:
            self.state.unhandled.append(f"{self.command} {self.path}")
        self._send(404, {"error": "Repository Not Found"}, headers={"X-Error-Code": "RepoNotFound"}, head=head)

    def _base(self) -> str:
        return f"http://{self.server.server_address[0]}:{self.server.server_address[1]}"

    def _refused(self, head: bool = False) -> bool:
        status = self.state.refuse
        if status is None:
            return False
        if status == 401:
            message = "Invalid credentials in Authorization header"
        else:
            message = "You don't have the rights to create a model under the namespace"
        if self.state.echo_auth:
            message += f" ({self.headers.get('Authorization')})"
        if self.command in ("POST", "PUT"):
            self._body()  # read it, so the client sees the answer rather than a reset connection
        self._send(status, {"error": message}, headers={"X-Error-Message": message}, head=head)
        return True

    def _repo(self, repo_id: str) -> dict | None:
        with self.state.lock:
            return self.state.repos.get(repo_id)

    # --- verbs ---------------------------------------------------------------------------------------------------
    def do_POST(self) -> None:  # noqa: N802
        self._record()
        if self._refused():
            return
        path = unquote(urlsplit(self.path).path)
        body = self._body()
        if path == "/api/repos/create":
            doc = json.loads(body or b"{}")
            ns = doc.get("organization") or "user"
            repo_id = f"{ns}/{doc['name']}"
            with self.state.lock:
                exists = repo_id in self.state.repos
                if not exists:
                    self.state.repos[repo_id] = {"private": bool(doc.get("private")), "files": {}, "sha": "0" * 40}
            url = f"{self._base()}/{repo_id}"
            self._send(409 if exists else 200, {"url": url, "name": repo_id, "id": repo_id,
                                                "error": "You already created this model repo" if exists else None})
            return
        if path == "/api/validate-yaml":
            self._send(200, {"errors": [], "warnings": []})
            return
        parts = path.strip("/").split("/")
        # api / models / ns / name / (preupload|commit) / rev
        if len(parts) >= 6 and parts[:2] == ["api", "models"] and parts[4] in ("preupload", "commit"):
            repo_id = f"{parts[2]}/{parts[3]}"
            repo = self._repo(repo_id)
            if repo is None:
                self._not_found()
                return
            if parts[4] == "preupload":
                files = json.loads(body)["files"]
                self._send(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                                            "oid": None} for f in files]})
                return
            summary, added = "", {}
            for line in body.splitlines():
                if not line.strip():
                    continue
                item = json.loads(line)
                if item["key"] == "header":
                    summary = item["value"].get("summary", "")
                elif item["key"] == "file":
                    v = item["value"]
                    assert v.get("encoding", "base64") == "base64", v.get("encoding")
                    added[v["path"]] = base64.b64decode(v["content"])
                elif item["key"] == "deletedFile":
                    added[item["value"]["path"]] = None
                else:  # lfsFile etc.: not supported by this stand-in
                    self._send(400, {"error": f"unsupported commit operation {item['key']}"})
                    return
            with self.state.lock:
                for p, data in added.items():
                    if data is None:
                        repo["files"].pop(p, None)
                    else:
                        repo["files"][p] = data
                sha = hashlib.sha1((repo["sha"] + summary + json.dumps(sorted(added))).encode()).hexdigest()
                repo["sha"] = sha
                self.state.commits.append({"repo_id": repo_id, "summary": summary, "paths": sorted(added)})
            self._send(200, {"commitUrl": f"{self._base()}/{repo_id}/commit/{sha}", "commitOid": sha,
                             "commitMessage": summary, "pullRequestUrl": None})
            return
        self._not_found()

    def do_GET(self) -> None:  # noqa: N802
        self._get(head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._get(head=True)

    def _get(self, head: bool) -> None:
        self._record()
        if self._refused(head):
            return
        path = unquote(urlsplit(self.path).path)
        parts = path.strip("/").split("/")
        if len(parts) >= 4 and parts[:2] == ["api", "models"]:
            repo_id = f"{parts[2]}/{parts[3]}"
            repo = self._repo(repo_id)
            if repo is None:
                self._not_found(head)
                return
            with self.state.lock:
                files = dict(repo["files"])
                sha = repo["sha"]
            rest = parts[4:]
            if not rest or rest[0] == "revision":
                self._send(200, {"id": repo_id, "modelId": repo_id, "sha": sha, "private": repo["private"],
                                 "siblings": [{"rfilename": p} for p in sorted(files)], "tags": []}, head=head)
                return
            if rest[0] == "tree" and len(rest) >= 2:
                prefix = "/".join(rest[2:])
                entries = [{"type": "file", "path": p, "size": len(d), "oid": git_blob_sha(d)}
                           for p, d in sorted(files.items()) if not prefix or p.startswith(prefix.rstrip("/") + "/")]
                self._send(200, entries, head=head)
                return
        # /{ns}/{name}/resolve/{rev}/{path...}
        if len(parts) >= 5 and parts[2] == "resolve":
            repo_id = f"{parts[0]}/{parts[1]}"
            repo = self._repo(repo_id)
            filename = "/".join(parts[4:])
            if repo is not None:
                with self.state.lock:
                    data = repo["files"].get(filename)
                    sha = repo["sha"]
                if data is not None:
                    self._send(200, body=data, head=head,
                               headers={"Content-Type": "application/octet-stream",
                                        "ETag": f'"{git_blob_sha(data)}"', "X-Repo-Commit": sha})
                    return
                with self.state.lock:
                    self.state.unhandled.append(f"{self.command} {self.path}")
                self._send(404, {"error": "Entry not found"}, headers={"X-Error-Code": "EntryNotFound"}, head=head)
                return
        self._not_found(head)


class HubStandIn:
    """``with HubStandIn() as hub: HfApi(endpoint=hub.endpoint, token=...)``; stops its thread on exit."""

    def __init__(self, refuse: int | None = None, echo_auth: bool = False, port: int = 0) -> None:
        self.state = HubState()
        self.state.refuse = refuse
        self.state.echo_auth = echo_auth
        self.server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self.server.daemon_threads = True
        self.server.state = self.state  # type: ignore[attr-defined]
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       name="hub-standin", daemon=True)

    def start(self) -> "HubStandIn":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> "HubStandIn":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def files(self, repo_id: str) -> dict[str, bytes]:
        with self.state.lock:
            return dict(self.state.repos[repo_id]["files"])
