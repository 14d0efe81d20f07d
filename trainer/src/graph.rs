//! The layer description every network is written in: a small DAG of named nodes.
//!
//! The same [`Graph`] value is interpreted by candle for training ([`crate::exec`]) and written
//! as an ONNX `ModelProto` for the edge ([`crate::onnx`]), so the exported graph cannot drift from
//! the trained one. Shapes are per sample; the batch dimension is implicit (symbolic `N` in ONNX).
//! Parameters of a node `p` are `p.weight` and `p.bias`:
//! - `Linear`: weight `[out, in]`, bias `[out]` (PyTorch's and candle's layout; ONNX `Gemm` with
//!   `transB = 1`);
//! - `Conv2d`: weight `[out_c, in_c, k, k]`, bias `[out_c]` (ONNX `Conv` as it is).

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
    /// Elementwise product of two inputs of one shape.
    Mul,
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
    /// Whether the node owns `weight` and `bias` parameters.
    pub fn has_params(&self) -> bool {
        matches!(self, Op::Linear { .. } | Op::Conv2d { .. })
    }

    /// Shapes of the node's weight and bias.
    pub fn param_shapes(&self) -> Option<(Vec<usize>, Vec<usize>)> {
        match *self {
            Op::Linear { in_dim, out_dim } => Some((vec![out_dim, in_dim], vec![out_dim])),
            Op::Conv2d { in_channels, out_channels, kernel, .. } => {
                Some((vec![out_channels, in_channels, kernel, kernel], vec![out_channels]))
            }
            _ => None,
        }
    }

    /// Fan-in of the weight, for initialisation.
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
    /// Names and shapes of every parameter, in node order (weight, then bias).
    pub fn parameters(&self) -> Vec<(String, Vec<usize>, usize)> {
        self.nodes
            .iter()
            .filter_map(|node| node.op.param_shapes().map(|shapes| (node, shapes)))
            .flat_map(|(node, (weight, bias))| {
                let fan_in = node.op.fan_in();
                [
                    (format!("{}.weight", node.name), weight, fan_in),
                    (format!("{}.bias", node.name), bias, fan_in),
                ]
            })
            .collect()
    }

    /// Number of trainable values.
    pub fn n_parameters(&self) -> usize {
        self.parameters().iter().map(|(_, shape, _)| shape.iter().product::<usize>()).sum()
    }
}
