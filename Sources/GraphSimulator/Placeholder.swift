import Crypto
import Hummingbird
import _CryptoExtras
