import { expect } from 'vitest';

type ErrorClass = abstract new (...args: never[]) => Error;

function check(error: unknown, cls: ErrorClass, code: string): void {
  expect(error, `expected a ${cls.name} with code ${code}, but nothing was thrown`).toBeDefined();
  expect(error).toBeInstanceOf(cls);
  expect((error as { code?: unknown }).code).toBe(code);
}

/** Asserts that `fn` throws an instance of `cls` with the stable `code` (the class and the code together). */
export function expectError(fn: () => unknown, cls: ErrorClass, code: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  check(caught, cls, code);
}

/** Async twin of {@link expectError}. */
export async function expectRejection(promise: Promise<unknown>, cls: ErrorClass, code: string): Promise<void> {
  let caught: unknown;
  try {
    await promise;
  } catch (error) {
    caught = error;
  }
  check(caught, cls, code);
}
