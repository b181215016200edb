"""rnnkit: recurrent neural networks from their equations, in NumPy, with hand-derived BPTT."""
from .cells import GRUCell, LSTMCell, RNNCell
from .grad_mode import no_grad
from .module import Module
from .recurrent import GRU, LSTM, RNN

__version__ = "0.1.0"
__all__ = ["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "Module", "no_grad"]
