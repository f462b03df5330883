// Who a request is: the Authorization header parsed as Convex does it —
// `Convex <admin key>[:<base64 identity>]` or `Bearer <JWT>` — with JWTs
// verified against the auth.config.ts providers (customJwt, ES256/RS256).
import { createHash, createPublicKey, timingSafeEqual, verify } from "node:crypto";

/** An infrastructure error: answered with a non-200 status and {code, message}. */
export class HttpError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const CLOCK_LEEWAY_SECONDS = 5;
const JWKS_REFRESH_MIN_MS = 5_000;
const TOKEN_CACHE_SIZE = 10_000;

// Standard claims → UserIdentity attribute names (as Convex maps them).
const CLAIM_TO_ATTRIBUTE = {
  name: "name",
  given_name: "givenName",
  family_name: "familyName",
  nickname: "nickname",
  preferred_username: "preferredUsername",
  profile: "profileUrl",
  picture: "pictureUrl",
  email: "email",
  email_verified: "emailVerified",
  gender: "gender",
  birthdate: "birthday",
  zoneinfo: "timezone",
  locale: "language",
  phone_number: "phoneNumber",
  phone_number_verified: "phoneNumberVerified",
  address: "address",
  updated_at: "updatedAt",
};
const REGISTERED_CLAIMS = new Set(["iss", "sub", "aud", "exp", "iat", "nbf", "jti"]);

function sha256(text) {
  return createHash("sha256").update(text).digest();
}

/** Constant-time comparison (hashing first makes the lengths equal). */
export function secretsEqual(given, expected) {
  return timingSafeEqual(sha256(given), sha256(expected));
}

function base64UrlJson(part) {
  return JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
}

function isLoopbackUrl(url) {
  return ["127.0.0.1", "localhost", "[::1]"].includes(url.hostname) || url.hostname.startsWith("127.");
}

function trimSlash(text) {
  return typeof text === "string" ? text.replace(/\/+$/, "") : text;
}

// Claims become identity attributes; nested objects are flattened to "a.b".
function identityFromClaims(claims) {
  const identity = {
    tokenIdentifier: `${claims.iss}|${claims.sub}`,
    subject: claims.sub,
    issuer: claims.iss,
  };
  const addClaim = (name, value) => {
    if (value !== null && typeof value === "object" && !Array.isArray(value)) {
      for (const [k, v] of Object.entries(value)) addClaim(`${name}.${k}`, v);
    } else if (value !== undefined) {
      identity[CLAIM_TO_ATTRIBUTE[name] ?? name] = value;
    }
  };
  for (const [name, value] of Object.entries(claims)) {
    if (!REGISTERED_CLAIMS.has(name)) addClaim(name, value);
  }
  return identity;
}

export class Authenticator {
  /**
   * @param adminKey the deployment's admin key
   * @param providers auth.config.ts `providers`
   * @param deploymentName used in error messages
   */
  constructor({ adminKey, providers, deploymentName }) {
    this.adminKey = adminKey;
    this.providers = (providers ?? []).filter((p) => p && p.type === "customJwt" && p.issuer && p.jwks);
    this.deploymentName = deploymentName;
    this.jwksCache = new Map(); // url → {keys: Map<kid, KeyObject>, fetchedAt}
    this.tokenCache = new Map(); // token → {identity, exp}
  }

  /**
   * {admin: boolean, identity: UserIdentity | null} for a request's
   * Authorization header (absent → anonymous). Throws HttpError 401/403.
   */
  async authenticate(header) {
    if (header === undefined || header === null || header === "") return { admin: false, identity: null };
    const lower = header.slice(0, 7).toLowerCase();
    if (lower === "convex ") return this._adminAuth(header.slice(7).trim());
    if (lower === "bearer ") return { admin: false, identity: await this.verifyJwt(header.slice(7).trim()) };
    throw new HttpError(401, "InvalidAuthHeader", "Header must begin with `bearer ` or `convex `");
  }

  /**
   * An admin key sent over the sync protocol (Authenticate tokenType
   * "Admin"), optionally acting as a user (`impersonating`: identity
   * attributes, as ConvexClient.setAdminAuth sends them). Throws HttpError.
   */
  authenticateAdmin(key, actingAs = null) {
    const { admin } = this._adminAuth(key);
    if (actingAs === null || actingAs === undefined) return { admin, identity: null };
    if (typeof actingAs !== "object" || Array.isArray(actingAs)) {
      throw new HttpError(401, "InvalidAuthHeader", "The identity to act as must be an object of user identity attributes");
    }
    const identity = { ...actingAs };
    identity.tokenIdentifier ??= `${identity.issuer}|${identity.subject}`;
    return { admin, identity };
  }

  /** A (verified) JWT's `exp`, seconds since the epoch, or null. */
  tokenExpiry(token) {
    try {
      const exp = base64UrlJson(token.split(".")[1]).exp;
      return typeof exp === "number" ? exp + CLOCK_LEEWAY_SECONDS : null;
    } catch {
      return null;
    }
  }

  _adminAuth(value) {
    // Deploy keys may carry a "prod:"/"dev:" type prefix, which Convex strips.
    const normalize = (key) => key.replace(/^(prod|dev|preview):/, "");
    const expected = normalize(this.adminKey ?? "");
    const matches = (key) => expected !== "" && secretsEqual(normalize(key), expected);
    if (matches(value)) return { admin: true, identity: null };
    // "<key>:<base64 identity JSON>" acts as that user (ConvexHttpClient.setAdminAuth).
    const separator = value.lastIndexOf(":");
    if (separator > 0 && matches(value.slice(0, separator))) {
      let identity;
      try {
        identity = JSON.parse(Buffer.from(value.slice(separator + 1), "base64").toString("utf8"));
      } catch {
        throw new HttpError(401, "InvalidAuthHeader", "Could not parse the identity after the admin key");
      }
      identity.tokenIdentifier ??= `${identity.issuer}|${identity.subject}`;
      return { admin: true, identity };
    }
    throw new HttpError(
      403,
      "BadDeployKey",
      `The provided deploy key was invalid for deployment '${this.deploymentName}'. Double check that the environment this key was generated for matches the desired deployment.`,
    );
  }

  async verifyJwt(token) {
    const cached = this.tokenCache.get(token);
    const nowSeconds = Date.now() / 1000;
    if (cached && cached.exp + CLOCK_LEEWAY_SECONDS >= nowSeconds) return cached.identity;

    const parts = token.split(".");
    if (parts.length !== 3) throw new HttpError(401, "InvalidAuthHeader", "Could not parse JWT: it must have three parts");
    let header;
    let claims;
    try {
      header = base64UrlJson(parts[0]);
      claims = base64UrlJson(parts[1]);
    } catch {
      throw new HttpError(401, "InvalidAuthHeader", "Could not parse JWT payload");
    }
    if (header.alg !== "ES256" && header.alg !== "RS256") {
      throw new HttpError(401, "Unauthenticated", `Could not verify the JWT: only RS256 and ES256 are supported, got ${header.alg}`);
    }
    const audiences = Array.isArray(claims.aud) ? claims.aud : claims.aud === undefined ? [] : [claims.aud];
    const provider = this.providers.find(
      (p) => trimSlash(p.issuer) === trimSlash(claims.iss) && (!p.applicationID || audiences.includes(p.applicationID)),
    );
    if (!provider) {
      const configured = this.providers.map((p) => `(${p.issuer}, ${p.applicationID ?? "any audience"})`).join(", ");
      throw new HttpError(
        401,
        "NoAuthProvider",
        `No auth provider found matching the given token (issuer ${claims.iss}, audience ${JSON.stringify(claims.aud)}). Check that your JWT's issuer and audience match one of your configured providers: [${configured}]`,
      );
    }
    if ((provider.algorithm ?? "RS256") !== header.alg) {
      throw new HttpError(401, "Unauthenticated", `Could not verify the JWT: the provider expects ${provider.algorithm}, the token uses ${header.alg}`);
    }
    if (typeof header.kid !== "string") throw new HttpError(401, "Unauthenticated", "Could not verify the JWT: it has no kid");
    const key = await this._publicKey(provider.jwks, header.kid);
    const signature = Buffer.from(parts[2], "base64url");
    const signed = Buffer.from(`${parts[0]}.${parts[1]}`);
    const valid =
      header.alg === "ES256"
        ? verify("sha256", signed, { key, dsaEncoding: "ieee-p1363" }, signature)
        : verify("sha256", signed, key, signature);
    if (!valid) {
      throw new HttpError(401, "Unauthenticated", "Could not verify OIDC token claim. Check that the token signature is valid and the token hasn't expired.");
    }
    if (typeof claims.exp !== "number" || claims.exp + CLOCK_LEEWAY_SECONDS < nowSeconds) {
      throw new HttpError(401, "Unauthenticated", "Could not verify OIDC token claim. Check that the token signature is valid and the token hasn't expired.");
    }
    if (typeof claims.sub !== "string") throw new HttpError(401, "Unauthenticated", "The JWT has no sub claim");
    const identity = identityFromClaims(claims);
    if (this.tokenCache.size >= TOKEN_CACHE_SIZE) this.tokenCache.clear();
    this.tokenCache.set(token, { identity, exp: claims.exp });
    return identity;
  }

  /** The key with this kid from the provider's JWKS, fetched lazily and cached. */
  async _publicKey(jwksUrl, kid) {
    let entry = this.jwksCache.get(jwksUrl);
    if (!entry || (!entry.keys.has(kid) && Date.now() - entry.fetchedAt > JWKS_REFRESH_MIN_MS)) {
      entry = { keys: await this._fetchJwks(jwksUrl), fetchedAt: Date.now() };
      this.jwksCache.set(jwksUrl, entry);
    }
    const key = entry.keys.get(kid);
    if (!key) throw new HttpError(401, "Unauthenticated", `Could not verify the JWT: no key with kid ${kid} in ${jwksUrl}`);
    return key;
  }

  async _fetchJwks(jwksUrl) {
    let document;
    try {
      if (jwksUrl.startsWith("data:")) {
        const comma = jwksUrl.indexOf(",");
        const meta = jwksUrl.slice(5, comma);
        const payload = jwksUrl.slice(comma + 1);
        document = JSON.parse(meta.endsWith(";base64") ? Buffer.from(payload, "base64").toString("utf8") : decodeURIComponent(payload));
      } else {
        const url = new URL(jwksUrl);
        // The sandbox talks to nothing but this machine.
        if (!isLoopbackUrl(url)) throw new Error(`the sandbox only fetches JWKS from loopback addresses, not ${url.host}`);
        const response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        document = await response.json();
      }
    } catch (error) {
      throw new HttpError(401, "Unauthenticated", `Could not fetch the JWKS from ${jwksUrl}: ${error.message}`);
    }
    const keys = new Map();
    for (const jwk of document.keys ?? []) {
      if (typeof jwk.kid !== "string") continue;
      try {
        keys.set(jwk.kid, createPublicKey({ key: jwk, format: "jwk" }));
      } catch {
        // A key of a type Node cannot import (e.g. symmetric) is not usable here.
      }
    }
    return keys;
  }
}
