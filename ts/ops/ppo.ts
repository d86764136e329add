// Ops of the ppo family: filled in by its issue.
export {};
