/**
 * What the functions put on the stage's bus, as the runtime publishes it (shared/observability/). Each
 * function may publish under its own source only, and every event carries `detail.stage`, the stage
 * name (STRONGBOX_ENVIRONMENT), so a rule can match its own stage even on a shared bus.
 */
export const EVENT_SOURCES = { api: "strongbox.api", rotation: "strongbox.rotation" } as const;

/** The API's hand-off of a KEK re-wrap (`POST /v1/kek/rewrap`) to the rotation function. */
export const REWRAP_REQUESTED = "KEK Rewrap Requested";

/** The API's announcement that a break-glass credential was handed out (seed 002 §4.2). */
export const BREAK_GLASS_ACTIVATED = "Break Glass Activated";
