/** The process environment as configuration reads it: only ever read, and any variable may be unset. */
export type Env = Readonly<Record<string, string | undefined>>;
