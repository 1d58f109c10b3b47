"""The seed stack's stand-in for `BENCH_ONLY=seed`: the earlier Python 2Bot's shape on
the official Python SDK (FastMCP, renamed MCPServer in SDK 2.x): one tool,
`run_codex_prompt`, with the seed's parameters and defaults, served over Streamable HTTP
behind a static bearer token, as its README deployed it. Only `tools/list` is measured,
side by side with 2Bot in the same run; a call is refused, because this is no Codex
runner.

    .venv/bin/python benches/support/seed_standin.py PORT TOKEN
"""

import sys
from typing import Literal

from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer

PORT = int(sys.argv[1])
TOKEN = sys.argv[2]
BASE = f"http://127.0.0.1:{PORT}"


class StaticToken:
    """The one token, as a seed operator configured it."""

    async def verify_token(self, token: str) -> AccessToken | None:
        if token != TOKEN:
            return None
        return AccessToken(token=token, client_id="bench", scopes=[], resource=f"{BASE}/mcp")


server = MCPServer(
    "2Bot",
    token_verifier=StaticToken(),
    auth=AuthSettings(
        issuer_url=BASE, resource_server_url=f"{BASE}/mcp", validate_token_resource=True
    ),
    log_level="WARNING",
)


@server.tool()
def run_codex_prompt(
    prompt: str,
    cwd: str | None = None,
    model: str | None = None,
    profile: str | None = None,
    sandbox: Literal["read-only", "workspace-write", "danger-full-access"] = "read-only",
    approval_policy: Literal["untrusted", "on-request", "never"] | None = None,
    allow_edits: bool = False,
    skip_git_repo_check: bool = False,
    add_dirs: list[str] | None = None,
    timeout_sec: int = 1800,
    ephemeral: bool = True,
    include_event_log: bool = False,
) -> dict:
    """Run the local OpenAI Codex CLI (`codex exec --json -`) with the prompt on stdin, in an
    allowed directory, and return its final message, thread id, token usage, commands run,
    files changed and exit status."""
    raise ValueError("the benchmark's stand-in lists the tool; it runs no Codex")


if __name__ == "__main__":
    print(f"listening {BASE}/mcp", flush=True)
    server.run(transport="streamable-http", host="127.0.0.1", port=PORT)
