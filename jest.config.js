/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.ts$': ['@swc/jest', {
      jsc: {
        parser: { syntax: 'typescript', decorators: true },
        transform: { legacyDecorator: true, decoratorMetadata: true },
        target: 'es2022',
      },
      module: { type: 'commonjs' },
    }],
    // pg-boss and a few of its dependencies ship only as ES modules, which Jest's CommonJS runtime
    // cannot load; they are compiled to CommonJS like our own sources.
    '^.+/node_modules/(pg-boss|rrule-temporal|serialize-error|non-error|temporal-spec)/.+\\.js$': ['@swc/jest', {
      jsc: { parser: { syntax: 'ecmascript' }, target: 'es2022' },
      module: { type: 'commonjs' },
    }],
  },
  transformIgnorePatterns: ['/node_modules/(?!(pg-boss|rrule-temporal|serialize-error|non-error|temporal-spec)/)'],
  // The generated Prisma client imports siblings with .js extensions.
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  testTimeout: 60000,
  // Finds out once whether a WebGPU adapter exists (and says which): GPU tests skip without one.
  globalSetup: '<rootDir>/test/helpers/gpu-setup.ts',
};
