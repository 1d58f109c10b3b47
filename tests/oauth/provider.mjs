// Why this exists: 2Bot's OAuth path is proven against a real, well-kept authorization
// server (the pinned `oidc-provider` package), not against tokens the tests mint
// themselves. tests/suite/oauth_proof.rs starts this script with node, walks ChatGPT's
// connector flow through it, and points 2Bot at it.
//
// What it is configured for, as an operator would configure Auth0, Okta or Keycloak for
// ChatGPT:
// - dynamic client registration (open, like ChatGPT's DCR needs), public clients allowed;
// - PKCE required, S256 only;
// - resource indicators (RFC 8707): any absolute http(s) resource is a resource server
//   whose access tokens are JWTs (RFC 9068, `typ: at+jwt`) with `aud` = the resource;
// - refresh tokens for every client allowed the grant, rotated on every use;
// - one test account, signed in by a tiny interaction the test drives over HTTP:
//   GET /interaction/:uid says which prompt is pending (JSON),
//   POST /interaction/:uid/login (form: login, password) signs in,
//   POST /interaction/:uid/confirm grants what the client asked for.
//
// Environment: OAUTH_PORT (0 = any free port), OAUTH_KEYS_FILE (optional: the private
// JWKS is read from it if it exists, else generated and written there, so a second
// instance can sign with the very same key and differ only in its issuer),
// OAUTH_SHORT_TTL_CLIENT (a client_name whose access tokens live 2 s, for the expiry test).
// Prints one line `issuer http://127.0.0.1:PORT` on stdout once it listens.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';

import Provider, { errors } from 'oidc-provider';

const ACCOUNT = 'operator';
const PASSWORD = 'correct horse battery staple';
const SCOPES = ['codex:read', 'codex:write'];
const shortTtlClient = process.env.OAUTH_SHORT_TTL_CLIENT || 'short-lived-test-client';

function signingKeys() {
  const file = process.env.OAUTH_KEYS_FILE;
  if (file && existsSync(file)) return JSON.parse(readFileSync(file, 'utf8'));
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  const keys = { keys: [{ ...jwk, kid: randomBytes(8).toString('hex'), use: 'sig', alg: 'RS256' }] };
  if (file) writeFileSync(file, JSON.stringify(keys), { mode: 0o600 });
  return keys;
}

function resourceServer(indicator) {
  let url;
  try {
    url = new URL(indicator);
  } catch {
    throw new errors.InvalidTarget('resource must be an absolute URL');
  }
  if (!['http:', 'https:'].includes(url.protocol) || url.hash) {
    throw new errors.InvalidTarget('resource must be an http(s) URL without a fragment');
  }
  return {
    audience: indicator,
    scope: SCOPES.join(' '),
    accessTokenFormat: 'jwt',
    accessTokenTTL: 3600,
    jwt: { sign: { alg: 'RS256' } },
  };
}

const server = http.createServer();
await new Promise((resolve) => {
  server.listen(Number(process.env.OAUTH_PORT || 0), '127.0.0.1', resolve);
});
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  jwks: signingKeys(),
  cookies: { keys: [randomBytes(32).toString('hex')] },
  scopes: ['openid', 'offline_access', ...SCOPES],
  findAccount: async (_ctx, id) => (id === ACCOUNT
    ? { accountId: id, claims: async () => ({ sub: id }) }
    : undefined),
  features: {
    devInteractions: { enabled: false },
    registration: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // The token request names its resource (ChatGPT echoes it); otherwise the one granted.
      defaultResource: async (_ctx, _client, oneOf) => (oneOf ? oneOf[0] : undefined),
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, indicator) => resourceServer(indicator),
    },
  },
  pkce: { methods: ['S256'], required: () => true },
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: () => true,
  ttl: {
    AccessToken: (_ctx, token, client) => (client?.clientName === shortTtlClient
      ? 2
      : token.resourceServer?.accessTokenTTL || 3600),
  },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
});

async function readForm(req) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 8192) throw new Error('form too large');
  }
  return new URLSearchParams(body);
}

function json(res, status, value) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(value));
}

// The sign-in and consent "pages": JSON instead of HTML, so a test can drive them.
async function interaction(req, res) {
  const [, , uid, action] = new URL(req.url, issuer).pathname.split('/');
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return json(res, 400, { error: 'interaction mismatch' });
  const { prompt, params, session } = details;
  if (req.method === 'GET' && !action) {
    return json(res, 200, {
      uid, prompt: prompt.name, client_id: params.client_id, scope: params.scope, resource: params.resource,
    });
  }
  if (req.method === 'POST' && action === 'login' && prompt.name === 'login') {
    const form = await readForm(req);
    if (form.get('login') !== ACCOUNT || form.get('password') !== PASSWORD) {
      return json(res, 401, { error: 'wrong login or password' });
    }
    return provider.interactionFinished(req, res, { login: { accountId: ACCOUNT } }, {
      mergeWithLastSubmission: false,
    });
  }
  if (req.method === 'POST' && action === 'confirm' && prompt.name === 'consent') {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const missing = prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes || {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    return provider.interactionFinished(req, res, { consent: { grantId } }, {
      mergeWithLastSubmission: true,
    });
  }
  return json(res, 400, { error: `no ${req.method} ${action || ''} for prompt ${prompt.name}` });
}

const callback = provider.callback();
server.on('request', (req, res) => {
  if (req.url.startsWith('/interaction/')) {
    interaction(req, res).catch((error) => json(res, 400, { error: String(error.message || error) }));
  } else {
    callback(req, res);
  }
});

process.on('SIGTERM', () => process.exit(0));
console.log(`issuer ${issuer}`);
