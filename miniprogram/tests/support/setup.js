// Every test file: a generous timeout for the real server, and no demo shortcuts (the fake
// wx below plays WeChat: wx.login codes and 人脸核身 results).
jest.setTimeout(60000)
require('miniprogram-simulate')
require('../../app/config').demo = null
