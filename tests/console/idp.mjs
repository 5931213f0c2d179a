// A real OpenID Connect provider for the console's browser tests:
// oidc-provider (OpenID Certified), with two people and their groups.
// Usage: node idp.mjs <console base URL>; prints "issuer <url>" when ready.
//   alice — groups iam-admins, staff (maps to admin)
//   eve   — group staff (maps to no role)
//   dev   — group developers (maps to owner: their own agents only)

import { generateKeyPairSync } from "node:crypto";
import { createServer } from "node:http";
import Provider from "oidc-provider";

const base = process.argv[2];
if (!base) {
  console.error("usage: node idp.mjs <console base URL>");
  process.exit(2);
}

const PEOPLE = {
  alice: { email: "alice@bank.example", name: "Alice Example", groups: ["iam-admins", "staff"] },
  eve: { email: "eve@bank.example", name: "Eve Example", groups: ["staff"] },
  dev: { email: "dev@bank.example", name: "Dev Example", groups: ["developers", "staff"] },
};

const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: "jwk" }), kid: "idp-rsa-1", use: "sig", alg: "RS256" };

const server = await new Promise((resolve) => {
  const s = createServer();
  s.listen(0, "127.0.0.1", () => resolve(s));
});
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: "idv-console",
      client_secret: "console-secret-for-tests",
      redirect_uris: [`${base}/console/sso/callback`],
      post_logout_redirect_uris: [`${base}/console/login`],
      response_types: ["code"],
      grant_types: ["authorization_code"],
      token_endpoint_auth_method: "client_secret_basic",
    },
  ],
  jwks: { keys: [jwk] },
  cookies: { keys: ["idv-console-tests"] },
  claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name"], groups: ["groups"] },
  scopes: ["openid", "email", "profile", "groups"],
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
  async findAccount(_ctx, id) {
    const p = PEOPLE[id];
    if (!p) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: p.email, email_verified: true, name: p.name, groups: p.groups };
      },
    };
  },
});
server.on("request", provider.callback());
console.log(`issuer ${issuer}`);
