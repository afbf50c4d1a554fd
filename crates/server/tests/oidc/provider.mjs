// A real OpenID provider for Gatehouse's sign-in tests: panva's `oidc-provider` (the certified
// Node.js implementation) on loopback, with one confidential client for Gatehouse.
//
// The device flow is on, with plain forms at /device.
//
// Usage: node provider.mjs <modules-dir> <redirect-uri> <post-logout-redirect-uri>
// Prints `listening <issuer>` once ready.
//
// The login page is a plain form (what a person would fill in). The test drives it as a browser
// would, choosing the account, its groups and the `amr`/`acr` the sign-in reports (MFA or not).
//
// Test controls, on the same port:
//   POST /__rotate            new signing key; the old one stays published (as real rotations do)
//   POST /__mode?m=<mode>     the next token response carries a bad id token, re-signed with the
//                             provider's own key unless stated: expired | wrong_audience |
//                             wrong_issuer | bad_nonce | tampered (payload changed, not re-signed) |
//                             foreign_key (signed by a key the provider never published)
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [modules, redirectUri, postLogoutUri] = process.argv.slice(2);
const load = (p) => import(pathToFileURL(resolve(modules, p)).href);
const { default: Provider } = await load('oidc-provider/lib/index.js');
const jose = await load('jose/dist/webapi/index.js');

const CLIENT_ID = 'gatehouse';
const CLIENT_SECRET = process.env.OIDC_CLIENT_SECRET || 'gatehouse-test-secret';

async function newKey() {
  const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
  const jwk = await jose.exportJWK(privateKey);
  return { ...jwk, kid: randomUUID(), alg: 'RS256', use: 'sig' };
}

let keys = [await newKey()];
let mode = null;
const accounts = new Map();

const server = http.createServer();
await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
const issuer = `http://127.0.0.1:${server.address().port}`;

function b64json(part) {
  return JSON.parse(Buffer.from(part, 'base64url').toString());
}

async function sign(payload, jwk) {
  const key = await jose.importJWK(jwk, 'RS256');
  return new jose.SignJWT(payload).setProtectedHeader({ alg: 'RS256', kid: jwk.kid, typ: 'JWT' }).sign(key);
}

async function rewrite(idToken, m) {
  const [header, payload] = idToken.split('.');
  const claims = b64json(payload);
  const now = Math.floor(Date.now() / 1000);
  switch (m) {
    case 'expired': return sign({ ...claims, iat: now - 7200, exp: now - 3600 }, keys[0]);
    case 'wrong_audience': return sign({ ...claims, aud: 'someone-else' }, keys[0]);
    case 'wrong_issuer': return sign({ ...claims, iss: 'https://evil.example' }, keys[0]);
    case 'bad_nonce': return sign({ ...claims, nonce: 'replayed' }, keys[0]);
    case 'foreign_key': return sign(claims, await newKey());
    case 'tampered': {
      const changed = Buffer.from(JSON.stringify({ ...claims, sub: 'mallory' })).toString('base64url');
      return `${header}.${changed}.${idToken.split('.')[2]}`;
    }
    default: throw new Error(`unknown mode ${m}`);
  }
}

function makeProvider() {
  const provider = new Provider(issuer, {
    clients: [{
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      redirect_uris: [redirectUri],
      post_logout_redirect_uris: [postLogoutUri],
      response_types: ['code'],
      grant_types: ['authorization_code', 'urn:ietf:params:oauth:grant-type:device_code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    pkce: { required: () => true },
    jwks: { keys },
    scopes: ['openid', 'email', 'profile', 'groups'],
    claims: { openid: ['sub', 'amr', 'acr', 'auth_time'], email: ['email', 'email_verified'], profile: ['name', 'preferred_username'], groups: ['groups'] },
    // Claims go into the id token itself, as most enterprise providers do.
    conformIdTokenClaims: false,
    cookies: { keys: ['gatehouse-test-cookie-key'] },
    features: {
      devInteractions: { enabled: false },
      // The device flow (RFC 8628): plain forms, as a person on another device would see them.
      deviceFlow: {
        enabled: true,
        userCodeInputSource: async (ctx, form) => {
          ctx.body = `<!DOCTYPE html><html><body>${form}<button type="submit" form="op.deviceInputForm">Continue</button></body></html>`;
        },
        userCodeConfirmSource: async (ctx, form, client, deviceInfo, userCode) => {
          ctx.body = `<!DOCTYPE html><html><body><p>${userCode}</p>${form}<button type="submit" form="op.deviceConfirmForm" name="confirm" value="yes">Continue</button></body></html>`;
        },
        successSource: async (ctx) => {
          ctx.body = '<!DOCTYPE html><html><body><p>Signed in on your device.</p></body></html>';
        },
      },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: async (ctx, form) => {
          ctx.body = `<!DOCTYPE html><html><body>${form}<button type="submit" form="op.logoutForm" name="logout" value="yes">Sign out</button></body></html>`;
        },
      },
    },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    findAccount: async (ctx, id) => ({
      accountId: id,
      claims: async () => ({ sub: id, ...(accounts.get(id) || {}) }),
    }),
  });
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.path === '/token' && mode && ctx.body && ctx.body.id_token) {
      ctx.body = { ...ctx.body, id_token: await rewrite(ctx.body.id_token, mode) };
      mode = null;
    }
  });
  return provider;
}

let provider = makeProvider();

function readForm(req) {
  return new Promise((ok, fail) => {
    let body = '';
    req.on('data', (c) => { body += c; if (body.length > 1e5) req.destroy(); });
    req.on('end', () => ok(new URLSearchParams(body)));
    req.on('error', fail);
  });
}

const list = (v) => (v ? v.split(',').map((s) => s.trim()).filter(Boolean) : []);

server.on('request', async (req, res) => {
  try {
    const url = new URL(req.url, issuer);
    if (req.method === 'POST' && url.pathname === '/__rotate') {
      keys = [await newKey(), ...keys];
      provider = makeProvider();
      res.end(JSON.stringify({ kid: keys[0].kid }));
      return;
    }
    if (req.method === 'POST' && url.pathname === '/__mode') {
      mode = url.searchParams.get('m');
      res.end('ok');
      return;
    }
    const m = url.pathname.match(/^\/interaction\/([^/]+)$/);
    if (m && req.method === 'GET') {
      const details = await provider.interactionDetails(req, res);
      res.setHeader('content-type', 'text/html');
      res.end(`<!DOCTYPE html><html><body><form method="post" action="/interaction/${details.uid}">
<input name="login" placeholder="account"> <input name="email"> <input name="name">
<input name="groups" placeholder="g1,g2"> <input name="amr" value="pwd"> <input name="acr">
<button type="submit">Sign in</button></form></body></html>`);
      return;
    }
    if (m && req.method === 'POST') {
      const details = await provider.interactionDetails(req, res);
      const form = await readForm(req);
      const login = form.get('login');
      accounts.set(login, {
        email: form.get('email') || `${login}@example.com`,
        email_verified: true,
        name: form.get('name') || login,
        preferred_username: login,
        groups: list(form.get('groups')),
      });
      const grant = new provider.Grant({ accountId: login, clientId: details.params.client_id });
      grant.addOIDCScope(details.params.scope);
      const grantId = await grant.save();
      const result = {
        login: { accountId: login, amr: list(form.get('amr')), acr: form.get('acr') || undefined },
        consent: { grantId },
      };
      await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
      return;
    }
    provider.callback()(req, res);
  } catch (e) {
    res.statusCode = 500;
    res.end(String(e && e.stack || e));
  }
});

console.log(`listening ${issuer}`);
