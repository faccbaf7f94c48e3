"""Drives `bitnet-gguf chat` at a pseudo-terminal; see repl.sh. Argument: the binary."""

import re
import subprocess
import sys
import time

import pexpect

BIN = sys.argv[1]
PROMPT = ">>> "
# Replies are forced to a fixed length (end-of-generation tokens ignored) so that they cannot
# end early and differ in length between the chat and `run`.
LEN = ["--ignore-eos"]


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def reply(chat, text):
    """Sends a message and returns the reply's text (what came before the next prompt)."""
    chat.sendline(text)
    chat.expect_exact(PROMPT, timeout=60)
    # Without the line editor's terminal controls (bracketed paste, clear to end of line).
    text_out = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", chat.before)
    lines = text_out.replace("\r", "").split("\n")
    # The first line is the echo of what was typed (several lines for a \"\"\" message).
    echoed = text.count("\n") + 1
    return "\n".join(lines[echoed:]).strip()


def run(*args):
    out = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        fail(f"run {args}: {out.stderr}")
    return out.stdout.strip()


chat = pexpect.spawn(BIN, ["chat", "-m", "tiny", *LEN], encoding="utf-8", timeout=60)
chat.setwinsize(40, 4000)  # no wrapping of long replies
chat.expect_exact(PROMPT)

# An endless reply (no token limit, end tokens ignored, the context shifts): only Ctrl-C ends it.
chat.sendline("Tell me a very long story.")
chat.expect(r"\S{20,}|\S+\s+\S+\s+\S+\s+\S+", timeout=60)  # it is streaming
# That match may be the line editor's echo of the question, before it has returned the line
# and left raw mode: a Ctrl-C sent then is read as a key by the next prompt, not delivered as
# SIGINT to the reply. A second later the reply is streaming with the terminal restored.
time.sleep(1.0)
for _ in range(3):
    chat.sendintr()
    try:
        chat.expect_exact("(stopped)", timeout=20)
        break
    except pexpect.TIMEOUT:
        continue  # a Ctrl-C read as a key despite the wait; the next one is a signal
else:
    fail("three Ctrl-C did not stop the reply")
chat.expect_exact(PROMPT, timeout=60)
if not chat.isalive():
    fail("Ctrl-C ended the chat")
# Ctrl-C at the prompt only prints a hint.
chat.sendintr()
chat.expect_exact("Ctrl + d or /bye", timeout=10)

# Greedy, fixed length: the same reply `run` gives to the same single message.
chat.sendline("/clear")
chat.expect_exact("Cleared")
for name, value in [("temperature", "0"), ("num_predict", "12")]:
    chat.sendline(f"/set parameter {name} {value}")
    chat.expect_exact(f"Set parameter '{name}' to '{value}'")
chat.sendline("/show parameters")
chat.expect(r"temperature\s+0\r?\n")
chat.expect_exact(PROMPT)
got = reply(chat, "Hello there")
want = run("run", "tiny", "Hello there", "--temp", "0", "-n", "12", *LEN)
if not got or got != want:
    fail(f"greedy chat reply {got!r} differs from run's {want!r}")
# Greedy replies repeat.
chat.sendline("/clear")
chat.expect_exact("Cleared")
chat.expect_exact(PROMPT)
again = reply(chat, "Hello there")
if again != got:
    fail(f"greedy replies differ: {again!r} vs {got!r}")

# Several lines, one message: the saved model holds it as one MESSAGE.
chat.sendline("/clear")
chat.expect_exact(PROMPT)
for line in ['"""first line', "second line"]:
    chat.sendline(line)
    chat.expect_exact("... ")
chat.sendline('third line"""')
chat.expect_exact(PROMPT, timeout=60)
chat.sendline("/save saved")
chat.expect_exact("Created new model 'saved'")
chat.expect_exact(PROMPT)
modelfile = run("show", "saved", "--modelfile")
if not re.search(r'MESSAGE user """?first line\nsecond line\nthird line', modelfile):
    fail(f"the three lines are not one user message:\n{modelfile}")
if modelfile.count("MESSAGE user") != 1 or modelfile.count("MESSAGE assistant") != 1:
    fail(f"expected one user and one assistant message:\n{modelfile}")

# `run` of the saved model continues the conversation: it answers the next message as the
# chat does (same history, greedy, same length from the saved parameters).
in_chat = reply(chat, "And then?")
from_run = run("run", "saved", "And then?", *LEN)
if not in_chat or in_chat != from_run:
    fail(f"run of the saved model answered {from_run!r}, the chat {in_chat!r}")

chat.sendline("/bye")
chat.expect(pexpect.EOF, timeout=10)
print("repl: all checks passed")
