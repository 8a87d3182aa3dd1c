/**
 * The part of the WebAssembly JS API the engine uses. Node has it globally, but @types/node 20
 * does not declare it, and TypeScript's declaration lives in lib.dom, which would bring in the
 * whole browser environment.
 */
declare namespace WebAssembly {
  class Module {
    constructor(bytes: BufferSource);
  }
  class Instance {
    constructor(module: Module, imports?: Record<string, Record<string, unknown>>);
    readonly exports: Record<string, unknown>;
  }
  class Memory {
    readonly buffer: ArrayBuffer;
    grow(pages: number): number;
  }
  type BufferSource = ArrayBufferView | ArrayBuffer;
}
