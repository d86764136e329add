// Ops of the prepack family: filled in by its issue.
export {};
