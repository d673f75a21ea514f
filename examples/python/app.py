#!/usr/bin/env python3
"""A small web app (standard library only) that hands its slow work to coil.

POST /reports answers at once with the report's job id; GET /reports/ID says
how far it is, and gives the result when it is done. The report itself runs in
a coil worker, crash-isolated, retried, with progress: report_job.py.

    COIL_URL   where coil serve listens (default http://127.0.0.1:8080)
    PORT       where this app listens (default 8000)
"""
import json
import os
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COIL = os.environ.get("COIL_URL", "http://127.0.0.1:8080")


def coil(method, path, body=None):
    req = urllib.request.Request(f"{COIL}{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


class App(BaseHTTPRequestHandler):
    def answer(self, status, doc):
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        if self.path != "/reports":
            return self.answer(404, {"error": "not found"})
        payload = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        status, doc = coil("POST", "/jobs/report.py", payload)
        if status != 202:
            return self.answer(502, {"error": doc.get("error", "coil refused the job")})
        self.answer(202, {"report": doc["id"], "status": doc["status"]})

    def do_GET(self):
        if not self.path.startswith("/reports/"):
            return self.answer(404, {"error": "not found"})
        job = self.path.split("/")[2]
        status, doc = coil("GET", f"/jobs/{job}")
        if status != 200:
            return self.answer(status, doc)
        out = {"report": job, "status": doc["status"], "progress": doc["progress"],
               "message": doc["message"]}
        if doc["status"] == "succeeded":
            out["result"] = coil("GET", f"/jobs/{job}/result")[1]
        elif doc["error"]:
            out["error"] = doc["error"]["message"]
        self.answer(200, out)

    def log_message(self, fmt, *args):
        pass


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("PORT", "8000"))), App)
    print(f"report app on http://127.0.0.1:{server.server_address[1]} (coil at {COIL})", flush=True)
    server.serve_forever()
