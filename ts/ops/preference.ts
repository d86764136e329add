// Ops of the preference family: filled in by its issue.
export {};
