// js-libp2p uses Promise.withResolvers, which Node.js has from version 22;
// this adds it on Node.js 20. Imported before anything of libp2p.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function () {
    let resolve, reject
    const promise = new this((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}
