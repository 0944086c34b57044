// The one door to the daemon: every request goes to a documented /api/v1 path.
const TOKEN_KEY = "picloud.token";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let onUnauthorized = () => {};

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  sessionStorage.setItem(TOKEN_KEY, value);
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

export function whenUnauthorized(fn) {
  onUnauthorized = fn;
}

export const enc = encodeURIComponent;

// "?a=1&b=2" from an object, skipping empty values.
export function qs(params) {
  const parts = Object.entries(params)
    .filter(([, v]) => v !== undefined && v !== null && v !== "")
    .map(([k, v]) => `${enc(k)}=${enc(v)}`);
  return parts.length ? `?${parts.join("&")}` : "";
}

async function decode(resp) {
  const type = resp.headers.get("Content-Type") || "";
  if (resp.status === 204) return null;
  if (type.includes("application/json")) return resp.json();
  return resp.text();
}

// An admin call: `path` is relative to /api/v1/ ("admin/apps").
// A 401 signs the user out unless `probe` (the sign-in check itself).
export async function call(method, path, body, { auth = true, probe = false } = {}) {
  const headers = {};
  if (auth && token()) headers.Authorization = `Bearer ${token()}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp;
  try {
    resp = await fetch(`/api/v1/${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch (err) {
    throw new ApiError(0, "network", `cannot reach the daemon (${err.message})`);
  }
  const data = await decode(resp);
  if (resp.ok) return data;
  const error = (data && data.error) || {};
  if (resp.status === 401 && auth && !probe) onUnauthorized();
  throw new ApiError(resp.status, error.code || "http_" + resp.status, error.message || resp.statusText);
}

export const api = {
  get: (path) => call("GET", path),
  post: (path, body = {}) => call("POST", path, body),
  put: (path, body = {}) => call("PUT", path, body),
  patch: (path, body = {}) => call("PATCH", path, body),
  del: (path) => call("DELETE", path),
};

// Follow cursors until `max` items (a dropdown needs all apps, not one page).
export async function all(path, max = 1000) {
  const items = [];
  let cursor = null;
  do {
    const sep = path.includes("?") ? "&" : "?";
    const page = await api.get(path + (cursor ? `${sep}cursor=${enc(cursor)}` : ""));
    items.push(...((page && page.items) || []));
    cursor = page && page.cursor;
  } while (cursor && items.length < max);
  return items;
}

// The data plane, as a device on the LAN calls it; returns the raw Response and timing.
export async function execute(scriptId, tail, { method, headers, body }) {
  const started = performance.now();
  const resp = await fetch(`/api/v1/execute/${enc(scriptId)}${tail}`, {
    method,
    headers,
    body: ["GET", "HEAD"].includes(method) ? undefined : body,
    cache: "no-store",
  });
  const text = await resp.text();
  return { resp, text, ms: performance.now() - started };
}
