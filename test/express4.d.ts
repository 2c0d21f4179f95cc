// express 4 installed beside express 5 under an npm alias; the tests drive it through express 5's types.
declare module "express4" {
  import express from "express";
  export default express;
}
