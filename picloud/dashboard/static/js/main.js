// The shell: sign-in, navigation and a hash router that mounts one page at a time.
import { ApiError, call, clearToken, setToken, token, whenUnauthorized } from "./api.js";
import { clear, errorBox, h, toast } from "./ui.js";

const PAGES = [
  ["apps", "Apps", () => import("./pages/apps.js")],
  ["scripts", "Scripts", () => import("./pages/scripts.js")],
  ["invoke", "Invoke", () => import("./pages/invoke.js")],
  ["invocations", "Invocations", () => import("./pages/invocations.js")],
  ["kv", "KV", () => import("./pages/kv.js")],
  ["triggers", "Triggers", () => import("./pages/triggers.js")],
  ["dead-letters", "Dead letters", () => import("./pages/deadletters.js")],
  ["system", "System", () => import("./pages/system.js")],
];

const root = document.getElementById("app");
let cleanup = null;
let renderSeq = 0;

function signIn(message) {
  clearToken();
  const input = h("input", {
    id: "token", type: "password", autocomplete: "current-password", required: true,
    placeholder: "pc_admin_…", "aria-describedby": "token-help",
  });
  const error = h("div", { role: "alert" }, message ? h("div.alert.error", message) : null);
  const form = h("form.signin.card", {
    onsubmit: async (ev) => {
      ev.preventDefault();
      const button = form.querySelector("button");
      button.disabled = true;
      setToken(input.value.trim());
      try {
        await call("GET", "admin/apps?limit=1", undefined, { probe: true });
        if (!location.hash || location.hash === "#/") history.replaceState(null, "", "#/apps");
        shell(ev);
      } catch (err) {
        clearToken();
        const text = err instanceof ApiError && err.status === 401
          ? "That token was refused. `picloud token` on the Pi shows the right one."
          : err.message;
        clear(error, h("div.alert.error", text));
        button.disabled = false;
        input.focus();
      }
    },
  },
    h("div.brand.big", logo(), "PiCloud"),
    h("h1", "Sign in"),
    h("label", { for: "token" }, "Admin token"),
    input,
    h("small#token-help.muted", "Kept in this browser tab only (sessionStorage) until you sign out."),
    error,
    h("button.primary", { type: "submit" }, "Sign in"),
  );
  runCleanup();
  clear(root, h("main#main.signin-wrap", form));
  input.focus();
}

function decodePart(part) {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

function logo() {
  const img = h("img", { src: new URL("../favicon.svg", import.meta.url).href, alt: "", width: 24, height: 24 });
  return img;
}

function shell(navigation) {
  const nav = h("nav.nav", { "aria-label": "Sections" },
    PAGES.map(([id, label]) => h("a", { href: `#/${id}`, "data-page": id }, label)));
  // Choosing the page already shown reloads it (no hashchange fires for the same hash).
  nav.addEventListener("click", (ev) => {
    const a = ev.target.closest("a");
    if (a && a.getAttribute("href") === location.hash) route(ev);
  });
  const out = h("button.link.signout", { type: "button", onclick: signOut }, "Sign out");
  const main = h("main#main", { tabindex: "-1" });
  clear(root, h("header.top", h("a.brand", { href: "#/apps" }, logo(), "PiCloud"), nav, out), main);
  route(navigation);
}

function signOut() {
  clearToken();
  location.hash = "";
  signIn();
  toast("Signed out");
}

function runCleanup() {
  if (cleanup) {
    try {
      cleanup();
    } catch (err) {
      console.error(err);
    }
  }
  cleanup = null;
}

// After a navigation (an event), focus moves to the new page's heading; on first load
// it stays at the top, so the first Tab reaches the skip link.
async function route(navigation) {
  const moveFocus = Boolean(navigation);
  if (!token()) return signIn();
  const main = document.getElementById("main");
  if (!main || !root.querySelector("nav")) return shell();
  const [path, query = ""] = location.hash.replace(/^#\/?/, "").split("?");
  const parts = path.split("/").map(decodePart);
  const page = PAGES.find(([id]) => id === parts[0]);
  if (!page) {
    location.replace("#/apps");
    return;
  }
  for (const a of root.querySelectorAll("nav a")) {
    if (a.dataset.page === page[0]) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  runCleanup();
  const seq = ++renderSeq;
  document.title = `${page[1]} · PiCloud`;
  try {
    const mod = await page[2]();
    if (seq !== renderSeq) return;
    clear(main);
    const result = mod.render(main, parts.slice(1).filter(Boolean), new URLSearchParams(query));
    cleanup = typeof result === "function" ? result : null;
  } catch (err) {
    // A page that cannot load (the daemon went away mid-upgrade) says so instead of going blank.
    clear(main, h("h1", { tabindex: "-1" }, page[1]), errorBox({ message: `this page failed to load: ${err.message}` }));
  }
  if (moveFocus) {
    window.scrollTo(0, 0);
    main.querySelector("h1")?.focus({ preventScroll: true });
  }
}

whenUnauthorized(() => signIn("Your session has ended or the token changed; sign in again."));
window.addEventListener("hashchange", route);
route();
