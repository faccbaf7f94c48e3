"""A loopback mock of the Hugging Face Hub's download protocol, for the `/api/pull` checks.

Serves repositories given as {repo: {"commit": sha, "files": {name: (bytes, lfs)}}}:
GET /api/models/{repo}/revision/{rev} (commit and siblings); HEAD/GET
/{repo}/resolve/{rev}/{file} (small files directly with their git blob SHA-1 ETag, LFS files as
a redirect to /lfs/{sha256} with X-Linked-Etag and X-Linked-Size); GET /lfs/{sha256}.
"""

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def start(port, repos):
    lfs = {}
    for r in repos.values():
        for data, is_lfs in r["files"].values():
            if is_lfs:
                lfs[hashlib.sha256(data).hexdigest()] = data

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def reply(self, status, headers=(), body=b""):
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_HEAD(self):
            self.do_GET()

        def do_GET(self):
            path = self.path
            if path.startswith("/lfs/"):
                data = lfs.get(path[5:])
                return self.reply(200, body=data) if data is not None else self.reply(404)
            if path.startswith("/api/models/") and "/revision/" in path:
                repo = path[len("/api/models/"):].split("/revision/")[0]
                if repo not in repos:
                    return self.reply(404)
                body = {"sha": repos[repo]["commit"], "siblings": [{"rfilename": n} for n in repos[repo]["files"]]}
                return self.reply(200, [("Content-Type", "application/json")], json.dumps(body).encode())
            if "/resolve/" in path:
                repo, rest = path.lstrip("/").split("/resolve/", 1)
                name = rest.split("/", 1)[1] if "/" in rest else ""
                if repo not in repos or name not in repos[repo]["files"]:
                    return self.reply(404)
                data, is_lfs = repos[repo]["files"][name]
                commit = ("X-Repo-Commit", repos[repo]["commit"])
                if is_lfs:
                    sha = hashlib.sha256(data).hexdigest()
                    return self.reply(302, [commit, ("Location", "/lfs/" + sha), ("X-Linked-Etag", f'"{sha}"'),
                                            ("X-Linked-Size", str(len(data)))])
                git = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
                return self.reply(200, [commit, ("ETag", f'"{git}"')], data)
            self.reply(404)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
