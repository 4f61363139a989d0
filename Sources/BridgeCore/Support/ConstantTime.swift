/// Compares two secrets in time that depends only on the length of `expected`, never on where
/// they first differ, so a forged `clientState` learns nothing from the response time.
public func constantTimeEquals(_ candidate: some Collection<UInt8>, _ expected: some Collection<UInt8>) -> Bool {
    let a = Array(candidate)
    let b = Array(expected)
    var difference: UInt = a.count == b.count ? 0 : 1
    if b.isEmpty { return a.isEmpty }
    for i in 0..<b.count {
        let left = i < a.count ? a[i] : ~b[i]
        difference |= UInt(left ^ b[i])
    }
    return difference == 0
}
