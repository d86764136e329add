/** Checks a packing conformance case (cases with `invariants`): filled in with SPEC §6. */
export function checkPackingCase(c: any, _res: any, _doc: any): void {
  throw new Error(`packing invariants checker not implemented yet (case: ${c.note})`);
}
