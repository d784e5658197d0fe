/** A route as the app lists it: its method and its path pattern (`:param` segments). */
interface ServedRoute {
  readonly method: string;
  readonly path: string;
}

/**
 * The methods the app serves on a concrete path, for a 405's `Allow` header; empty when no route has
 * that path, which is a 404. Built from the app's own route list once every route is registered, so a
 * new route is covered without being named here. HEAD is served wherever GET is (Hono answers it
 * from the GET route).
 */
export function allowedMethods(routes: readonly ServedRoute[]): (path: string) => string[] {
  const patterns = new Map<string, { pattern: RegExp; methods: Set<string> }>();
  for (const { method, path } of routes) {
    // Middleware is registered for ALL methods on wildcard paths; it is no route.
    if (method === "ALL") continue;
    const entry = patterns.get(path) ?? { pattern: patternOf(path), methods: new Set<string>() };
    entry.methods.add(method);
    if (method === "GET") entry.methods.add("HEAD");
    patterns.set(path, entry);
  }
  return (path) => {
    const allowed = new Set<string>();
    for (const { pattern, methods } of patterns.values()) {
      if (pattern.test(path)) for (const method of methods) allowed.add(method);
    }
    return [...allowed].sort();
  };
}

function patternOf(path: string): RegExp {
  const segments = path
    .split("/")
    .map((segment) => (segment.startsWith(":") ? "[^/]+" : segment.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
  return new RegExp(`^${segments.join("/")}$`);
}
