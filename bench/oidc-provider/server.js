// The baseline of `idv-bench tokens`: oidc-provider (OpenID Certified) as
// an OAuth 2.0 server for the client_credentials grant, issuing JWT access
// tokens (RFC 9068, `at+jwt`) signed with EdDSA (Ed25519), like
// IdentityVault. In-memory storage, no per-request logging.
//
//   PORT=8790 node server.js     -> prints "ready <issuer>" once listening
import { generateKeyPairSync } from 'node:crypto';

import Provider from 'oidc-provider';

const port = Number(process.env.PORT || 8790);
const issuer = `http://127.0.0.1:${port}`;
const resource = 'https://api.bench.example';

const { privateKey } = generateKeyPairSync('ed25519');
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'bench-ed25519', alg: 'EdDSA', use: 'sig' };

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'bench',
    client_secret: 'bench-secret-0123456789abcdef0123456789',
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_basic',
    // The only key is Ed25519, so every signed response uses EdDSA.
    id_token_signed_response_alg: 'EdDSA',
  }],
  jwks: { keys: [signingKey] },
  scopes: ['read', 'write'],
  features: {
    clientCredentials: { enabled: true },
    devInteractions: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'read write',
        audience: resource,
        accessTokenTTL: 300,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'EdDSA' } },
      }),
    },
  },
});
provider.proxy = false;

provider.listen(port, '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});
