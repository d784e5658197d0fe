export const now = (): string => new Date().toISOString();

export const DAY_MS = 24 * 3600 * 1000;
