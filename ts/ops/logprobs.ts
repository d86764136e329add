// Ops of the logprobs family: filled in by its issue.
export {};
