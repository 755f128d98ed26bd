// Preloaded into the MCP conformance suite (node --import): the suite has no option for
// request headers, and memex's MCP endpoint needs a Bearer key. This adds
// `Authorization: <MCP_AUTHORIZATION>` to every request the suite sends to MCP_AUTHORIZED_ORIGIN,
// through undici's global dispatcher, which both fetch (the MCP SDK's transport) and
// undici's own request (the DNS-rebinding scenario) go through.
import { createRequire } from "node:module";
import { realpathSync } from "node:fs";

const authorization = process.env.MCP_AUTHORIZATION;
const origin = process.env.MCP_AUTHORIZED_ORIGIN;
if (!authorization || !origin) {
  throw new Error("bearer.mjs needs MCP_AUTHORIZATION and MCP_AUTHORIZED_ORIGIN");
}
// The suite's own undici, so the dispatcher is the one its requests look up.
const require = createRequire(realpathSync(process.argv[1]));
const { Agent, getGlobalDispatcher, setGlobalDispatcher } = require("undici");

function withAuthorization(headers) {
  if (headers == null) {
    return { authorization };
  }
  if (Array.isArray(headers)) {
    return [...headers, "authorization", authorization];
  }
  if (typeof headers[Symbol.iterator] === "function") {
    return [...[...headers].flat(), "authorization", authorization];
  }
  return { ...headers, authorization };
}

const base = getGlobalDispatcher() ?? new Agent();
setGlobalDispatcher(
  base.compose((dispatch) => (options, handler) => {
    const target = options.origin == null ? "" : new URL(options.origin).origin;
    return dispatch(
      target === origin ? { ...options, headers: withAuthorization(options.headers) } : options,
      handler,
    );
  }),
);
