"""Conformance of `bitnet-gguf serve` with the official `ollama` and `openai` Python clients.

Run by scripts/ci/python-clients.sh, which starts the server. Environment:
  BITNET_URL   base URL of the running server (http://127.0.0.1:PORT)
  BITNET_BIN   the bitnet-gguf binary (for `tokenize --json` and `run`)
  BITNET_GGUF  the GGUF file the model "tiny" was created from
  BITNET_HUB_PORT  the loopback port of HF_ENDPOINT, where this file serves a mock Hub
Prints one line per check and a closing "N passed, N failed" line; exits 1 on any failure.
"""

import json
import os
import socket
import subprocess
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request

import hashlib

import ollama
import openai

import mock_hub

URL = os.environ["BITNET_URL"]
BIN = os.environ["BITNET_BIN"]
GGUF = os.environ["BITNET_GGUF"]
MODEL = "tiny"
GREEDY = {"temperature": 0, "num_predict": 24, "stop": []}

oc = ollama.Client(host=URL)
oa = openai.OpenAI(base_url=URL + "/v1", api_key="unused")
results = []


def check(fn):
    name = fn.__name__
    try:
        fn()
        results.append((name, True))
        print(f"ok      {name}", flush=True)
    except Exception:
        results.append((name, False))
        print(f"FAILED  {name}", flush=True)
        traceback.print_exc()
    return fn


def our_tokens(text, bos=True):
    args = [BIN, "tokenize", "-m", GGUF, "--json", text]
    if bos:
        args.insert(-1, "--bos")
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return json.loads(out)["ids"]


def http(method, path, body=None, raw=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(URL + path, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def metric(name):
    _, body = http("GET", "/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"metric {name} missing")


PROMPT = "It is a truth universally acknowledged, that"


@check
def list_and_version():
    models = oc.list().models
    names = [m.model for m in models]
    assert "tiny:latest" in names, names
    m = next(m for m in models if m.model == "tiny:latest")
    assert m.size > 0 and m.modified_at is not None and m.details.format == "gguf"
    status, body = http("GET", "/api/version")
    assert status == 200 and json.loads(body)["version"]


@check
def show_has_model_info():
    s = oc.show(MODEL)
    assert s.modelinfo is not None and "general.architecture" in s.modelinfo, s
    arch = s.modelinfo["general.architecture"]
    assert s.modelinfo[f"{arch}.context_length"] > 0
    assert s.capabilities == ["completion"]
    assert "FROM " in s.modelfile


@check
def generate_raw_greedy_matches_run_and_tokenizer():
    r = oc.generate(model=MODEL, prompt=PROMPT, raw=True, options=GREEDY, stream=False)
    assert r.done and r.response.strip(), r
    assert r.prompt_eval_count == len(our_tokens(PROMPT)), (r.prompt_eval_count, our_tokens(PROMPT))
    assert 0 < r.eval_count <= 24
    run = subprocess.run(
        [BIN, "run", "-m", GGUF, "-p", PROMPT, "-n", "24", "--temp", "0", "--no-display-prompt"],
        check=True, capture_output=True, text=True,
    ).stdout
    assert run.rstrip("\n") == r.response, (run, r.response)
    # Streamed: same text, every chunk well formed, one final chunk.
    chunks = list(oc.generate(model=MODEL, prompt=PROMPT, raw=True, options=GREEDY, stream=True))
    assert all(c.done is False for c in chunks[:-1]) and chunks[-1].done
    assert "".join(c.response for c in chunks) == r.response
    assert chunks[-1].eval_count == r.eval_count and chunks[-1].done_reason in ("stop", "length")


@check
def generate_templated_has_context():
    r = oc.generate(model=MODEL, prompt="Who is Mr. Darcy?", options=GREEDY, stream=False)
    assert r.response.strip() and r.context, r
    assert len(r.context) == r.prompt_eval_count + r.eval_count


@check
def chat_streamed_and_not():
    msgs = [{"role": "user", "content": "Tell me about Elizabeth."}]
    r = oc.chat(model=MODEL, messages=msgs, options=GREEDY, stream=False)
    assert r.message.role == "assistant" and r.message.content.strip(), r
    status, body = http("POST", "/apply-template", {"model": MODEL, "messages": msgs})
    rendered = json.loads(body)["prompt"]
    assert r.prompt_eval_count == len(our_tokens(rendered)), (r.prompt_eval_count, rendered)
    parts = list(oc.chat(model=MODEL, messages=msgs, options=GREEDY, stream=True))
    assert all(p.message.role == "assistant" for p in parts) and parts[-1].done
    assert "".join(p.message.content for p in parts) == r.message.content


@check
def ps_lists_loaded_model():
    models = oc.ps().models
    assert any(m.model == "tiny:latest" for m in models), models
    assert all(m.expires_at is not None for m in models)


@check
def embeddings_native_and_legacy():
    arch = oc.show(MODEL).modelinfo["general.architecture"]
    n_embd = oc.show(MODEL).modelinfo[f"{arch}.embedding_length"]
    r = oc.embed(model=MODEL, input=["Emma Woodhouse", "Mr. Knightley"])
    assert len(r.embeddings) == 2 and all(len(v) == n_embd for v in r.embeddings)
    norm = sum(x * x for x in r.embeddings[0]) ** 0.5
    assert abs(norm - 1) < 1e-3, norm
    legacy = oc.embeddings(model=MODEL, prompt="Emma")
    assert len(legacy.embedding) == n_embd


@check
def create_copy_delete():
    st = oc.create(model="tiny-terse", from_=MODEL, system="You are terse.", parameters={"temperature": 0.1, "stop": ["User:"]}, stream=False)
    assert st.status == "success", st
    s = oc.show("tiny-terse")
    assert 'SYSTEM """You are terse."""' in s.modelfile and "temperature" in s.parameters, (s.modelfile, s.parameters)
    assert 'PARAMETER stop "User:"' in s.modelfile, s.modelfile
    oc.copy("tiny-terse", "tiny-copy")
    names = [m.model for m in oc.list().models]
    assert "tiny-terse:latest" in names and "tiny-copy:latest" in names
    r = oc.chat(model="tiny-copy", messages=[{"role": "user", "content": "Hello"}], options={"num_predict": 4}, stream=False)
    assert r.message.role == "assistant"
    oc.delete("tiny-copy")
    oc.delete("tiny-terse")
    names = [m.model for m in oc.list().models]
    assert "tiny-copy:latest" not in names and "tiny:latest" in names
    try:
        oc.delete("tiny-copy")
        raise AssertionError("deleting twice succeeded")
    except ollama.ResponseError as e:
        assert e.status_code == 404


@check
def remote_import_through_blob_upload_and_pull():
    digest = oc.create_blob(GGUF)
    assert digest.startswith("sha256:"), digest
    assert http("HEAD", "/api/blobs/" + digest)[0] == 200
    assert http("POST", "/api/blobs/sha256:" + "0" * 64, raw=b"not matching")[0] == 400
    st = oc.create(model="tiny-remote:v2", files={"tiny.gguf": digest}, parameters={"num_predict": 8}, stream=False)
    assert st.status == "success"
    r = oc.generate(model="tiny-remote:v2", prompt=PROMPT, raw=True, options={"temperature": 0, "stop": []}, stream=False)
    assert 0 < r.eval_count <= 8, r.eval_count
    assert oc.pull("tiny-remote:v2").status == "success"  # already local: nothing to download
    try:
        oc.pull("not-here")
        raise AssertionError("pull of a missing model succeeded")
    except ollama.ResponseError as e:
        assert e.status_code == 404
    oc.delete("tiny-remote:v2")


@check
def create_blob_of_100_mb_streams_past_the_body_limit():
    # The server's body limit (32 MiB by default) does not apply to blob uploads.
    import tempfile
    with tempfile.NamedTemporaryFile(suffix=".gguf") as f:
        with open(GGUF, "rb") as src:
            f.write(src.read())
        chunk = bytes(range(256)) * 4096
        for _ in range(100):
            f.write(chunk)
        f.flush()
        digest = oc.create_blob(f.name)
    assert http("HEAD", "/api/blobs/" + digest)[0] == 200
    st = oc.create(model="tiny-big:v1", files={"big.gguf": digest}, stream=False)
    assert st.status == "success"
    assert oc.show("tiny-big:v1").details.format == "gguf"
    oc.delete("tiny-big:v1")
    assert http("HEAD", "/api/blobs/" + digest)[0] == 404


@check
def pull_from_the_hub_streams_progress():
    port = os.environ.get("BITNET_HUB_PORT")
    assert port, "BITNET_HUB_PORT is not set"
    data = open(GGUF, "rb").read()
    sha = hashlib.sha256(data).hexdigest()
    hub = mock_hub.start(int(port), {"org/tiny-gguf": {"commit": "e" * 40, "files": {
        "README.md": (b"# tiny\n", False), "tiny-i2_s.gguf": (data, True)}}})
    try:
        name = "hf.co/org/tiny-gguf:I2_S"
        parts = list(oc.pull(name, stream=True))
        statuses = [p.status for p in parts]
        assert statuses[0] == "pulling manifest", statuses
        progress = [p for p in parts if p.digest]
        assert progress, statuses
        assert progress[-1].digest == "sha256:" + sha
        assert progress[-1].completed == progress[-1].total == len(data)
        assert progress[-1].status == "pulling " + sha[:12]
        assert statuses[-3:] == ["verifying sha256 digest", "writing manifest", "success"], statuses
        assert name in [m.model for m in oc.list().models]
        r = oc.generate(model=name, prompt=PROMPT, raw=True, options={"temperature": 0, "num_predict": 4}, stream=False)
        assert r.eval_count > 0
        assert oc.pull(name, stream=False).status == "success"
        try:
            list(oc.pull("hf.co/org/missing", stream=True))
            raise AssertionError("pull of a repository the Hub does not have succeeded")
        except ollama.ResponseError as e:
            assert "404" in str(e), e
        oc.delete(name)
    finally:
        hub.shutdown()


@check
def openai_chat_and_completions():
    msgs = [{"role": "user", "content": "Tell me about Elizabeth."}]
    r = oa.chat.completions.create(model=MODEL, messages=msgs, temperature=0, max_tokens=24)
    text = r.choices[0].message.content
    assert text.strip() and r.choices[0].finish_reason in ("stop", "length"), r
    native = oc.chat(model=MODEL, messages=msgs, options={"temperature": 0, "num_predict": 24}, stream=False)
    assert text == native.message.content, (text, native.message.content)
    assert r.usage.prompt_tokens == native.prompt_eval_count and r.usage.completion_tokens == native.eval_count
    stream = oa.chat.completions.create(model=MODEL, messages=msgs, temperature=0, max_tokens=24, stream=True,
                                        stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == text
    assert chunks[-1].usage.completion_tokens == r.usage.completion_tokens
    c = oa.completions.create(model=MODEL, prompt=PROMPT, temperature=0, max_tokens=24, stop=[])
    raw = oc.generate(model=MODEL, prompt=PROMPT, raw=True, options=GREEDY, stream=False)
    assert c.choices[0].text == raw.response, (c.choices[0].text, raw.response)
    sc = list(oa.completions.create(model=MODEL, prompt=PROMPT, temperature=0, max_tokens=24, stop=[], stream=True))
    assert "".join(x.choices[0].text for x in sc if x.choices) == raw.response


@check
def json_format_replies_parse():
    """Ollama `format="json"` and OpenAI `response_format` give content json.loads turns into a dict."""
    parsed = 0
    msgs = [{"role": "user", "content": "Describe Emma Woodhouse as JSON."}]
    for seed, temperature, num_predict in [(1, 0, -1), (2, 0.8, 48), (3, 1.2, 12)]:
        opts = {"seed": seed, "temperature": temperature, "num_predict": num_predict}
        r = oc.chat(model=MODEL, messages=msgs, format="json", options=opts, stream=False)
        assert isinstance(json.loads(r.message.content), dict), r.message.content
        streamed = "".join(c.message.content for c in oc.chat(model=MODEL, messages=msgs, format="json",
                                                               options=opts, stream=True))
        assert isinstance(json.loads(streamed), dict), streamed
        g = oc.generate(model=MODEL, prompt="Emma's friends:", format="json", options=opts, stream=False)
        assert isinstance(json.loads(g.response), dict), g.response
        schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
                  "required": ["name", "age"]}
        # The smallest object of this schema, `{"name":"","age":0}`, needs 19 tokens at worst.
        sopts = dict(opts, num_predict=-1 if num_predict < 0 else max(num_predict, 48))
        s = json.loads(oc.chat(model=MODEL, messages=msgs, format=schema, options=sopts, stream=False).message.content)
        assert list(s) == ["name", "age"] and isinstance(s["name"], str) and isinstance(s["age"], int), s
        max_tokens = None if num_predict < 0 else num_predict
        c = oa.chat.completions.create(model=MODEL, messages=msgs, seed=seed, temperature=temperature,
                                       max_tokens=max_tokens, response_format={"type": "json_object"})
        assert isinstance(json.loads(c.choices[0].message.content), dict), c.choices[0].message.content
        chunks = oa.chat.completions.create(model=MODEL, messages=msgs, seed=seed, temperature=temperature,
                                            max_tokens=max_tokens, response_format={"type": "json_object"},
                                            stream=True)
        text = "".join(x.choices[0].delta.content or "" for x in chunks if x.choices)
        assert isinstance(json.loads(text), dict), text
        rf = {"type": "json_schema", "json_schema": {"name": "person", "schema": schema}}
        c = oa.chat.completions.create(model=MODEL, messages=msgs, seed=seed, temperature=temperature,
                                       max_tokens=sopts["num_predict"] if num_predict >= 0 else None,
                                       response_format=rf)
        s = json.loads(c.choices[0].message.content)
        assert list(s) == ["name", "age"] and isinstance(s["age"], int), s
        parsed += 7
    # The client refuses other format strings itself; the server does too.
    status, body = http("POST", "/api/chat", {"model": MODEL, "messages": msgs, "format": "xml"})
    assert status == 400 and json.loads(body)["error"].startswith("invalid format"), (status, body)
    print(f"        json: {parsed} of {parsed} replies parsed as objects", flush=True)


@check
def long_prompts_are_truncated_not_refused():
    long = " ".join(["Emma walked to Highbury and spoke with Mr. Knightley."] * 120)
    r = oc.generate(model=MODEL, prompt=long, raw=True, options={"temperature": 0, "num_predict": 16}, stream=False)
    n_ctx = next(m.context_length for m in oc.ps().models if m.model == "tiny:latest")
    assert len(our_tokens(long)) > n_ctx
    assert r.done and r.prompt_eval_count == n_ctx - 16, r.prompt_eval_count
    history = []
    for i in range(30):
        history += [{"role": "user", "content": f"Question {i}: " + "tell me more " * 10},
                    {"role": "assistant", "content": "Indeed, " + "very much so " * 10}]
    history.append({"role": "user", "content": "And then?"})
    c = oc.chat(model=MODEL, messages=history, options={"temperature": 0, "num_predict": 16}, stream=False)
    assert c.done and 0 < c.prompt_eval_count <= n_ctx - 16, c.prompt_eval_count
    o = oa.chat.completions.create(model=MODEL, messages=history, temperature=0, max_tokens=16)
    assert o.usage.prompt_tokens == c.prompt_eval_count, (o.usage.prompt_tokens, c.prompt_eval_count)


@check
def openai_models_and_embeddings():
    ids = [m.id for m in oa.models.list().data]
    assert "tiny:latest" in ids, ids
    assert oa.models.retrieve("tiny:latest").id == "tiny:latest"
    e = oa.embeddings.create(model=MODEL, input=["Emma", "Harriet"])  # base64 by default
    native = oc.embed(model=MODEL, input=["Emma"]).embeddings[0]
    assert len(e.data) == 2 and len(e.data[0].embedding) == len(native)
    assert max(abs(a - b) for a, b in zip(e.data[0].embedding, native)) < 1e-6
    f = oa.embeddings.create(model=MODEL, input="Emma", encoding_format="float")
    assert len(f.data[0].embedding) == len(native)


@check
def errors_are_4xx_and_server_keeps_serving():
    try:
        oc.generate(model="no-such-model", prompt="x")
        raise AssertionError("unknown model accepted")
    except ollama.ResponseError as e:
        assert e.status_code == 404 and "not found" in e.error
    try:
        oa.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
        raise AssertionError("unknown model accepted")
    except openai.NotFoundError:
        pass
    try:
        oa.chat.completions.create(model=MODEL, messages=[])
        raise AssertionError("empty messages accepted")
    except openai.BadRequestError:
        pass
    for path, raw in [("/api/chat", b"{nope"), ("/api/generate", b""), ("/v1/chat/completions", b"[1,2"),
                      ("/api/generate", json.dumps({"model": MODEL, "prompt": "x", "options": {"top_k": "many"}}).encode()),
                      ("/api/embed", json.dumps({"model": MODEL, "input": 5}).encode())]:
        status, _ = http("POST", path, raw=raw)
        assert 400 <= status < 500, (path, status)
    assert http("GET", "/")[0] == 200
    r = oc.generate(model=MODEL, prompt=PROMPT, raw=True, options={"temperature": 0, "num_predict": 2}, stream=False)
    assert r.done


@check
def disconnect_mid_stream_frees_slot():
    host, port = URL.split("//")[1].split(":")
    before = metric("bitnet_tokens_predicted_total")
    prompt_len = len(our_tokens(PROMPT))
    n_ctx = oc.ps().models[0].context_length
    body = json.dumps({"model": MODEL, "prompt": PROMPT, "raw": True, "options": {"num_predict": 100000, "temperature": 1, "stop": []}})
    s = socket.create_connection((host, int(port)))
    s.sendall(f"POST /api/generate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}".encode())
    got = b""
    while got.count(b"\n") < 12:
        got += s.recv(4096)
    assert b" 200 " in got.split(b"\r\n")[0]
    s.close()
    for _ in range(200):
        if metric("bitnet_requests_processing") == 0:
            break
        time.sleep(0.05)
    assert metric("bitnet_requests_processing") == 0, "the slot was not freed"
    generated = metric("bitnet_tokens_predicted_total") - before
    # Without the disconnect it would run to the end of the context.
    assert generated < n_ctx - prompt_len - 1, (generated, n_ctx, prompt_len)
    # And the next request is served at once by the freed slot.
    r = oc.generate(model=MODEL, prompt=PROMPT, raw=True, options={"temperature": 0, "num_predict": 4, "stop": []}, stream=False)
    assert r.done and r.eval_count == 4


def stream_once(n_predict, seed):
    chunks = list(oc.generate(model=MODEL, prompt=f"Chapter {seed}.", raw=True, stream=True,
                              options={"num_predict": n_predict, "temperature": 0.8, "seed": seed, "stop": []}))
    for c in chunks[:-1]:
        assert c.done is False and isinstance(c.response, str)
    last = chunks[-1]
    assert last.done and last.done_reason in ("stop", "length") and last.eval_count is not None
    return last.eval_count


def load(clients, per_client, n_predict=48):
    errors, tokens = [], []
    lock = threading.Lock()

    def worker(i):
        for j in range(per_client):
            try:
                n = stream_once(n_predict, i * 100 + j)
                with lock:
                    tokens.append(n)
            except Exception as e:  # reported below
                with lock:
                    errors.append(repr(e))

    t0 = time.time()
    ts = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    dt = time.time() - t0
    return errors, sum(tokens), dt, len(tokens)


@check
def load_32_concurrent_streaming_clients():
    errors1, tok1, dt1, n1 = load(1, 3)
    assert not errors1, errors1
    errors, tok, dt, n = load(32, 3)
    assert not errors, errors[:3]
    assert n == 96, n
    print(f"        load: 1 client x 3 requests: {tok1} tokens in {dt1:.2f}s = {tok1 / dt1:.1f} tok/s; "
          f"32 clients x 3 requests: {tok} tokens in {dt:.2f}s = {tok / dt:.1f} tok/s", flush=True)


passed = sum(1 for _, ok in results if ok)
failed = len(results) - passed
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
