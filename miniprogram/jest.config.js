// Two projects: unit tests of the pages against a route table, and journey tests whose
// pages talk to the real server (started once by tests/support/global-setup.js).
const common = {
  testEnvironment: 'jsdom',
  setupFilesAfterEnv: ['<rootDir>/tests/support/setup.js'],
}

module.exports = {
  projects: [
    Object.assign({ displayName: 'unit', testMatch: ['<rootDir>/tests/unit/**/*.test.js'] }, common),
    Object.assign(
      {
        displayName: 'journey',
        testMatch: ['<rootDir>/tests/journey/**/*.test.js'],
        globalSetup: '<rootDir>/tests/support/global-setup.js',
        globalTeardown: '<rootDir>/tests/support/global-teardown.js',
      },
      common,
    ),
  ],
}
