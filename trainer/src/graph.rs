//! The layer description every network is written in: a small DAG of named nodes.
//!
//! The same [`Graph`] value is interpreted by candle for training ([`crate::exec`]) and written
//! as an ONNX `ModelProto` for the edge ([`crate::onnx`]), so the exported graph cannot drift from
//! the trained one. Shapes are per sample; the batch dimension is implicit (symbolic `N` in ONNX).
//! Parameters of a node `p`:
//! - `Linear`: `p.weight` `[out, in]`, `p.bias` `[out]` (PyTorch's and candle's layout; ONNX
//!   `Gemm` with `transB = 1`);
//! - `Conv2d`: `p.weight` `[out_c, in_c, k, k]`, `p.bias` `[out_c]` (ONNX `Conv` as it is);
//! - `GroupNorm`: `p.scale` `[C]` (initialised to 1) and `p.shift` `[C]` (initialised to 0). They
//!   are not called `weight`/`bias` so that weight transforms (spectral normalisation) and weight
//!   decay that select `*.weight` leave them alone.

/// Epsilon of [`Op::GroupNorm`] (PyTorch's and ONNX's default).
pub const GROUP_NORM_EPS: f64 = 1e-5;

/// How a parameter starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// Uniform in `±1/√fan_in` (PyTorch's default for `Linear` and `Conv2d`).
    Uniform {
        fan_in: usize,
    },
    Ones,
    Zeros,
}

/// One operation. Inputs are the names of earlier nodes or graph inputs.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// `x · Wᵀ + b` on `[N, in]`.
    Linear {
        in_dim: usize,
        out_dim: usize,
    },
    /// 2-D convolution on `[N, C, H, W]`, square kernel, same stride and padding on both axes.
    Conv2d {
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    },
    /// Nearest-neighbour upsampling by 2 on `[N, C, H, W]` (ONNX `Resize`).
    Upsample2x,
    /// `x · sigmoid(x)`.
    Silu,
    LeakyRelu {
        alpha: f32,
    },
    Tanh,
    /// Concatenation along axis 1 of all inputs.
    Concat,
    /// Elementwise sum of two inputs, the second broadcast (e.g. `[N, C, 1, 1]` onto `[N, C, H, W]`).
    Add,
    /// Elementwise product of two inputs, the second broadcast like [`Op::Add`]'s.
    Mul,
    /// `x · factor` for a constant `factor`.
    Scale {
        factor: f32,
    },
    /// Group normalisation of `[N, C, H, W]` (Wu & He 2018): each sample's channels in `groups`
    /// groups of `C / groups`, each group normalised to zero mean and unit variance (biased,
    /// `eps = 1e-5`), then `· scale[c] + shift[c]`.
    GroupNorm {
        groups: usize,
        channels: usize,
    },
    /// Batched matrix product `[N, a, b] × [N, b, c] → [N, a, c]`.
    MatMul,
    /// `[N, a, b] → [N, b, a]`.
    Transpose,
    /// Softmax over the last axis.
    Softmax,
    /// `[N, F] → [N, 1]`: the sum of each row.
    RowSum,
    /// Reshape each sample to `dims` (batch kept).
    Reshape {
        dims: Vec<usize>,
    },
    /// `[N, ...] → [N, prod(...)]`.
    Flatten,
    /// Sinusoidal embedding of a `[N, 1]` timestep: `[sin(t·f), cos(t·f)]` with
    /// `f_i = exp(−ln(10000) · i / (dim/2))`, giving `[N, dim]`.
    TimestepEmbedding {
        dim: usize,
    },
    /// Softmax over each categorical block of a `[N, width]` row, other features unchanged.
    BlockSoftmax {
        blocks: Vec<(usize, usize, bool)>,
    },
}

impl Op {
    /// Whether the node owns parameters (`weight` and `bias`, or `scale` and `shift`).
    pub fn has_params(&self) -> bool {
        matches!(self, Op::Linear { .. } | Op::Conv2d { .. } | Op::GroupNorm { .. })
    }

    /// Shapes of the node's two parameters (weight and bias, or scale and shift).
    pub fn param_shapes(&self) -> Option<(Vec<usize>, Vec<usize>)> {
        match *self {
            Op::Linear { in_dim, out_dim } => Some((vec![out_dim, in_dim], vec![out_dim])),
            Op::Conv2d { in_channels, out_channels, kernel, .. } => {
                Some((vec![out_channels, in_channels, kernel, kernel], vec![out_channels]))
            }
            Op::GroupNorm { channels, .. } => Some((vec![channels], vec![channels])),
            _ => None,
        }
    }

    /// Names (suffixes after `node.`) and initialisations of the node's two parameters.
    pub fn param_kinds(&self) -> Option<[(&'static str, Init); 2]> {
        match self {
            Op::Linear { .. } | Op::Conv2d { .. } => {
                let init = Init::Uniform { fan_in: self.fan_in() };
                Some([("weight", init), ("bias", init)])
            }
            Op::GroupNorm { .. } => Some([("scale", Init::Ones), ("shift", Init::Zeros)]),
            _ => None,
        }
    }

    /// Fan-in of the weight, for initialisation (0 for nodes not initialised by fan-in).
    pub fn fan_in(&self) -> usize {
        match *self {
            Op::Linear { in_dim, .. } => in_dim,
            Op::Conv2d { in_channels, kernel, .. } => in_channels * kernel * kernel,
            _ => 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    pub op: Op,
    pub inputs: Vec<String>,
}

/// A graph input: name and per-sample shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    pub name: String,
    pub dims: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    pub inputs: Vec<Input>,
    pub nodes: Vec<Node>,
    /// Names of the output nodes, with the per-sample shape each has.
    pub outputs: Vec<(String, Vec<usize>)>,
}

/// Builds a graph node by node; each method returns the new node's name.
#[derive(Debug, Default)]
pub struct GraphBuilder {
    inputs: Vec<Input>,
    nodes: Vec<Node>,
}

impl GraphBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn input(&mut self, name: &str, dims: &[usize]) -> String {
        self.inputs.push(Input { name: name.to_owned(), dims: dims.to_vec() });
        name.to_owned()
    }

    pub fn node(&mut self, name: &str, op: Op, inputs: &[&str]) -> String {
        self.nodes.push(Node {
            name: name.to_owned(),
            op,
            inputs: inputs.iter().map(|&input| input.to_owned()).collect(),
        });
        name.to_owned()
    }

    pub fn linear(&mut self, name: &str, input: &str, in_dim: usize, out_dim: usize) -> String {
        self.node(name, Op::Linear { in_dim, out_dim }, &[input])
    }

    pub fn silu(&mut self, input: &str) -> String {
        self.node(&format!("{input}.silu"), Op::Silu, &[input])
    }

    /// Linear followed by SiLU.
    pub fn dense(&mut self, name: &str, input: &str, in_dim: usize, out_dim: usize) -> String {
        let linear = self.linear(name, input, in_dim, out_dim);
        self.silu(&linear)
    }

    pub fn conv(
        &mut self,
        name: &str,
        input: &str,
        in_channels: usize,
        out_channels: usize,
        stride: usize,
    ) -> String {
        self.node(
            name,
            Op::Conv2d { in_channels, out_channels, kernel: 3, stride, padding: 1 },
            &[input],
        )
    }

    /// A 1×1 convolution (no padding).
    pub fn conv1x1(
        &mut self,
        name: &str,
        input: &str,
        in_channels: usize,
        out_channels: usize,
    ) -> String {
        self.node(
            name,
            Op::Conv2d { in_channels, out_channels, kernel: 1, stride: 1, padding: 0 },
            &[input],
        )
    }

    pub fn group_norm(
        &mut self,
        name: &str,
        input: &str,
        groups: usize,
        channels: usize,
    ) -> String {
        self.node(name, Op::GroupNorm { groups, channels }, &[input])
    }

    pub fn finish(self, outputs: &[(&str, &[usize])]) -> Graph {
        Graph {
            inputs: self.inputs,
            nodes: self.nodes,
            outputs: outputs
                .iter()
                .map(|(name, dims)| ((*name).to_owned(), dims.to_vec()))
                .collect(),
        }
    }
}

impl Graph {
    /// Names, shapes and initialisations of every parameter, in node order (weight then bias,
    /// or scale then shift).
    pub fn parameters(&self) -> Vec<(String, Vec<usize>, Init)> {
        self.nodes
            .iter()
            .filter_map(|node| {
                let (first, second) = node.op.param_shapes()?;
                let kinds = node.op.param_kinds()?;
                Some((node, [first, second], kinds))
            })
            .flat_map(|(node, shapes, kinds)| {
                shapes
                    .into_iter()
                    .zip(kinds)
                    .map(|(shape, (suffix, init))| (format!("{}.{suffix}", node.name), shape, init))
            })
            .collect()
    }

    /// Number of trainable values.
    pub fn n_parameters(&self) -> usize {
        self.parameters().iter().map(|(_, shape, _)| shape.iter().product::<usize>()).sum()
    }
}
