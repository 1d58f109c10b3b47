"""Sign in to 2Bot's built-in authorization server with the official Python MCP SDK's own
OAuth client (`mcp.client.auth.OAuthClientProvider`), then run the tool.

The SDK does everything a connector does by itself: the 401, the protected-resource and
authorization-server metadata, dynamic client registration, PKCE S256 with `resource`,
the code exchange, `iss` validation, and the bearer on every MCP request. This script
only plays the operator in the browser (the redirect and callback handlers): it opens the
authorization URL the SDK hands it, signs in with the password, allows every scope and
hands back the code.

Usage: python_oauth_client.py URL PASSWORD PROMPT
Prints one JSON object (the tool result, the granted scope, the client's name on the
consent page); assertions live in the Rust test that runs this script.
"""

import asyncio
import json
import re
import sys
from urllib.parse import parse_qs, urlencode, urljoin, urlparse

import httpx2
from mcp import Client
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)

# A loopback redirect URI: allowed whatever TWOBOT_OAUTH_REDIRECT_HOSTS says (RFC 8252).
REDIRECT_URI = "http://127.0.0.1:33418/callback"


class Memory(TokenStorage):
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


async def main(url: str, password: str, prompt: str) -> None:
    seen: dict[str, str] = {}

    async def redirect_handler(authorization_url: str) -> None:
        seen["authorization_url"] = authorization_url

    async def callback_handler() -> AuthorizationCodeResult:
        start = seen["authorization_url"]
        # The operator's browser: keeps the sign-in cookie, follows no redirect.
        async with httpx2.AsyncClient(follow_redirects=False) as browser:
            page = await browser.get(start)
            page.raise_for_status()
            hidden = dict(re.findall(r'name="(request|csrf)" value="([^"]*)"', page.text))
            consent = await browser.post(
                urljoin(start, "/oauth/authorize/sign-in"),
                data={**hidden, "password": password},
            )
            consent.raise_for_status()
            names = re.findall(r"<strong>([^<]*)</strong> will be able", consent.text)
            seen["consent_client_name"] = names[0] if names else ""
            scopes = re.findall(r'name="scope" value="([^"]*)"', consent.text)
            # A repeated field (one `scope` per ticked box), as a browser sends it.
            form = list(hidden.items()) + [("decision", "allow")] + [("scope", s) for s in scopes]
            decided = await browser.post(
                urljoin(start, "/oauth/authorize/consent"),
                content=urlencode(form),
                headers={"content-type": "application/x-www-form-urlencoded"},
            )
            location = decided.headers["location"]
            query = parse_qs(urlparse(location).query)
            return AuthorizationCodeResult(
                code=query["code"][0],
                state=query.get("state", [None])[0],
                iss=query.get("iss", [None])[0],
            )

    storage = Memory()
    provider = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name="Python SDK client",
            redirect_uris=[REDIRECT_URI],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )
    http = create_mcp_http_client(auth=provider)
    async with http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            tools = await client.list_tools()
            result = await client.call_tool("run_codex_prompt", {"prompt": prompt})
    print(
        json.dumps(
            {
                "tools": [t.name for t in tools.tools],
                "text": [c.text for c in result.content if getattr(c, "type", "") == "text"],
                "isError": result.is_error,
                "scope": storage.tokens.scope if storage.tokens else None,
                "has_refresh_token": bool(storage.tokens and storage.tokens.refresh_token),
                "client_id": storage.client.client_id if storage.client else None,
                "consent_client_name": seen.get("consent_client_name"),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
