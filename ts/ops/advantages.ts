// Ops of the advantages family: filled in by its issue.
export {};
