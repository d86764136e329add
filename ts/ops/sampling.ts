// Ops of the sampling family: filled in by its issue.
export {};
