//! Writes a [`Graph`] and its trained parameters as an ONNX `ModelProto` (IR version 8, opset 17).
//!
//! The protobuf types are `tract_onnx::pb` (prost code committed in tract-onnx: nothing needs
//! `protoc`), encoded with `prost`. Weights are `raw_data` little-endian `f32` initialisers; the
//! batch dimension of every input and output is the symbolic `N`. Each graph op maps to standard
//! ONNX ops that tract and onnxruntime both run:
//!
//! | graph op | ONNX |
//! |---|---|
//! | `Linear` | `Gemm(x, W, b)`, `transB = 1` |
//! | `Conv2d` | `Conv(x, W, b)` |
//! | `Upsample2x` | `Resize(x, "", scales = [1, 1, 2, 2])`, nearest, asymmetric, floor |
//! | `Silu` | `Mul(x, Sigmoid(x))` |
//! | `TimestepEmbedding` | `Concat(Sin(Mul(t, f)), Cos(Mul(t, f)))` |
//! | `Scale` | `Mul(x, factor)` |
//! | `GroupNorm` | see below |
//! | `MatMul`, `Transpose`, `Softmax` | `MatMul`, `Transpose(perm = [0, 2, 1])`, `Softmax(axis = -1)` |
//!
//! `GroupNorm` is written without reshaping `x` (the edge refuses `Shape`, and the node does not
//! know `H × W`): per-channel means `ReduceMean(x, [2, 3])` `[N, C, 1, 1]` become per-group means
//! through a fixed 1×1 `Conv` that averages the channels of each group (every channel has the
//! same `H · W` values, so the mean of means is the group mean); the same for the variance of the
//! centred values; then `(x − μ) / Sqrt(σ² + eps) · scale + shift` with the affine reshaped to
//! `[C, 1, 1]`.
//! | `BlockSoftmax` | `Concat` of `Slice`s, `Softmax` on categorical blocks |
//!
//! The bytes depend only on the graph and the parameter values: the same training run gives the
//! same file.

use prost::Message;
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::tensor_shape_proto::{Dimension, dimension};
use tract_onnx::pb::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto, type_proto,
};

use crate::error::{Error, Result};
use crate::exec::timestep_frequencies;
use crate::graph::{GROUP_NORM_EPS, Graph, Op};
use crate::params::HostParam;

pub const OPSET: i64 = 17;
pub const IR_VERSION: i64 = 8;
pub const BATCH_DIM: &str = "N";

/// Encodes the model as ONNX bytes.
pub fn export(graph: &Graph, params: &[HostParam], graph_name: &str) -> Result<Vec<u8>> {
    Ok(model_proto(graph, params, graph_name)?.encode_to_vec())
}

pub fn model_proto(graph: &Graph, params: &[HostParam], graph_name: &str) -> Result<ModelProto> {
    let mut writer = Writer::default();
    for param in params {
        writer.initializers.push(float_tensor(&param.name, &param.shape, &param.values));
    }
    for node in &graph.nodes {
        writer.node(node.name.as_str(), &node.op, &node.inputs)?;
    }
    let proto = GraphProto {
        name: graph_name.to_owned(),
        node: writer.nodes,
        initializer: writer.initializers,
        input: graph.inputs.iter().map(|input| value_info(&input.name, &input.dims)).collect(),
        output: graph.outputs.iter().map(|(name, dims)| value_info(name, dims)).collect(),
        ..GraphProto::default()
    };
    Ok(ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: OPSET }],
        producer_name: "fieldsynth-trainer".to_owned(),
        producer_version: env!("CARGO_PKG_VERSION").to_owned(),
        graph: Some(proto),
        ..ModelProto::default()
    })
}

#[derive(Default)]
struct Writer {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
}

impl Writer {
    fn emit(
        &mut self,
        op_type: &str,
        name: &str,
        inputs: &[&str],
        output: &str,
        attributes: Vec<AttributeProto>,
    ) {
        self.nodes.push(NodeProto {
            op_type: op_type.to_owned(),
            name: name.to_owned(),
            input: inputs.iter().map(|&input| input.to_owned()).collect(),
            output: vec![output.to_owned()],
            attribute: attributes,
            ..NodeProto::default()
        });
    }

    fn node(&mut self, name: &str, op: &Op, inputs: &[String]) -> Result<()> {
        let args: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let x =
            *args.first().ok_or_else(|| Error::Internal(format!("node `{name}` has no input")))?;
        let weight = format!("{name}.weight");
        let bias = format!("{name}.bias");
        match op {
            Op::Linear { .. } => {
                self.emit("Gemm", name, &[x, &weight, &bias], name, vec![int_attr("transB", 1)])
            }
            Op::Conv2d { kernel, stride, padding, .. } => {
                let (k, s, p) = (*kernel as i64, *stride as i64, *padding as i64);
                self.emit(
                    "Conv",
                    name,
                    &[x, &weight, &bias],
                    name,
                    vec![
                        ints_attr("kernel_shape", &[k, k]),
                        ints_attr("pads", &[p, p, p, p]),
                        ints_attr("strides", &[s, s]),
                    ],
                );
            }
            Op::Upsample2x => {
                let scales = format!("{name}/scales");
                self.initializers.push(float_tensor(&scales, &[4], &[1.0, 1.0, 2.0, 2.0]));
                self.emit(
                    "Resize",
                    name,
                    &[x, "", &scales],
                    name,
                    vec![
                        string_attr("mode", "nearest"),
                        string_attr("coordinate_transformation_mode", "asymmetric"),
                        string_attr("nearest_mode", "floor"),
                    ],
                );
            }
            Op::Silu => {
                let sigmoid = format!("{name}/sigmoid");
                self.emit("Sigmoid", &sigmoid, &[x], &sigmoid, vec![]);
                self.emit("Mul", name, &[x, &sigmoid], name, vec![]);
            }
            Op::LeakyRelu { alpha } => {
                self.emit("LeakyRelu", name, &[x], name, vec![float_attr("alpha", *alpha)])
            }
            Op::Tanh => self.emit("Tanh", name, &[x], name, vec![]),
            Op::Concat => self.emit("Concat", name, &args, name, vec![int_attr("axis", 1)]),
            Op::Add => self.emit("Add", name, &args, name, vec![]),
            Op::Mul => self.emit("Mul", name, &args, name, vec![]),
            Op::Scale { factor } => {
                let factor_name = format!("{name}/factor");
                self.initializers.push(float_tensor(&factor_name, &[1], &[*factor]));
                self.emit("Mul", name, &[x, &factor_name], name, vec![]);
            }
            Op::GroupNorm { groups, channels } => self.group_norm(name, x, *groups, *channels)?,
            Op::MatMul => self.emit("MatMul", name, &args, name, vec![]),
            Op::Transpose => {
                self.emit("Transpose", name, &[x], name, vec![ints_attr("perm", &[0, 2, 1])])
            }
            Op::Softmax => self.emit("Softmax", name, &[x], name, vec![int_attr("axis", -1)]),
            Op::RowSum => {
                let axes = format!("{name}/axes");
                self.initializers.push(int64_tensor(&axes, &[1]));
                self.emit("ReduceSum", name, &[x, &axes], name, vec![int_attr("keepdims", 1)]);
            }
            Op::Reshape { dims } => {
                let shape = format!("{name}/shape");
                let mut values = vec![-1_i64];
                values.extend(dims.iter().map(|&dim| dim as i64));
                self.initializers.push(int64_tensor(&shape, &values));
                self.emit("Reshape", name, &[x, &shape], name, vec![]);
            }
            Op::Flatten => self.emit("Flatten", name, &[x], name, vec![int_attr("axis", 1)]),
            Op::TimestepEmbedding { dim } => {
                let freqs = format!("{name}/freqs");
                let angles = format!("{name}/angles");
                let (sin, cos) = (format!("{name}/sin"), format!("{name}/cos"));
                self.initializers.push(float_tensor(
                    &freqs,
                    &[1, dim / 2],
                    &timestep_frequencies(*dim),
                ));
                self.emit("Mul", &angles, &[x, &freqs], &angles, vec![]);
                self.emit("Sin", &sin, &[&angles], &sin, vec![]);
                self.emit("Cos", &cos, &[&angles], &cos, vec![]);
                self.emit("Concat", name, &[&sin, &cos], name, vec![int_attr("axis", 1)]);
            }
            Op::BlockSoftmax { blocks } => {
                let axes = format!("{name}/axes");
                self.initializers.push(int64_tensor(&axes, &[1]));
                let mut parts = Vec::with_capacity(blocks.len());
                for (idx, &(start, width, categorical)) in blocks.iter().enumerate() {
                    let (starts, ends) =
                        (format!("{name}/{idx}/start"), format!("{name}/{idx}/end"));
                    self.initializers.push(int64_tensor(&starts, &[start as i64]));
                    self.initializers.push(int64_tensor(&ends, &[(start + width) as i64]));
                    let slice = format!("{name}/{idx}/slice");
                    self.emit("Slice", &slice, &[x, &starts, &ends, &axes], &slice, vec![]);
                    if categorical {
                        let softmax = format!("{name}/{idx}/softmax");
                        self.emit(
                            "Softmax",
                            &softmax,
                            &[&slice],
                            &softmax,
                            vec![int_attr("axis", 1)],
                        );
                        parts.push(softmax);
                    } else {
                        parts.push(slice);
                    }
                }
                let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
                self.emit("Concat", name, &parts, name, vec![int_attr("axis", 1)]);
            }
        }
        Ok(())
    }
}

impl Writer {
    fn has_initializer(&self, name: &str) -> bool {
        self.initializers.iter().any(|tensor| tensor.name == name)
    }

    /// See the module documentation.
    fn group_norm(&mut self, name: &str, x: &str, groups: usize, channels: usize) -> Result<()> {
        if groups == 0 || !channels.is_multiple_of(groups) {
            return Err(Error::Internal(format!(
                "group norm `{name}`: {channels} channels do not split into {groups} groups"
            )));
        }
        // Shared by every group norm of the same geometry: one constant each.
        let averager = format!("group_norm/average_{groups}x{channels}");
        if !self.has_initializer(&averager) {
            let per_group = channels / groups;
            let mut weights = vec![0.0_f32; channels * channels];
            for out in 0..channels {
                for inp in 0..channels {
                    if out / per_group == inp / per_group {
                        weights[out * channels + inp] = 1.0 / per_group as f32;
                    }
                }
            }
            self.initializers.push(float_tensor(&averager, &[channels, channels, 1, 1], &weights));
        }
        let affine_shape = format!("group_norm/affine_shape_{channels}");
        if !self.has_initializer(&affine_shape) {
            self.initializers.push(int64_tensor(&affine_shape, &[channels as i64, 1, 1]));
        }
        let eps = "group_norm/eps".to_owned();
        if !self.has_initializer(&eps) {
            self.initializers.push(float_tensor(&eps, &[1], &[GROUP_NORM_EPS as f32]));
        }
        let spatial_axes = || vec![ints_attr("axes", &[2, 3]), int_attr("keepdims", 1)];
        let one_by_one = || vec![ints_attr("kernel_shape", &[1, 1])];
        let name_of = |part: &str| format!("{name}/{part}");
        let (channel_mean, mean) = (name_of("channel_mean"), name_of("mean"));
        self.emit("ReduceMean", &channel_mean, &[x], &channel_mean, spatial_axes());
        self.emit("Conv", &mean, &[&channel_mean, &averager], &mean, one_by_one());
        let centred = name_of("centred");
        self.emit("Sub", &centred, &[x, &mean], &centred, vec![]);
        let (squared, channel_var, var) =
            (name_of("squared"), name_of("channel_var"), name_of("var"));
        self.emit("Mul", &squared, &[&centred, &centred], &squared, vec![]);
        self.emit("ReduceMean", &channel_var, &[&squared], &channel_var, spatial_axes());
        self.emit("Conv", &var, &[&channel_var, &averager], &var, one_by_one());
        let (var_eps, std) = (name_of("var_eps"), name_of("std"));
        self.emit("Add", &var_eps, &[&var, &eps], &var_eps, vec![]);
        self.emit("Sqrt", &std, &[&var_eps], &std, vec![]);
        let normalised = name_of("normalised");
        self.emit("Div", &normalised, &[&centred, &std], &normalised, vec![]);
        let (scale, shift) = (name_of("scale"), name_of("shift"));
        let (scale_param, shift_param) = (format!("{name}.scale"), format!("{name}.shift"));
        self.emit("Reshape", &scale, &[&scale_param, &affine_shape], &scale, vec![]);
        self.emit("Reshape", &shift, &[&shift_param, &affine_shape], &shift, vec![]);
        let scaled = name_of("scaled");
        self.emit("Mul", &scaled, &[&normalised, &scale], &scaled, vec![]);
        self.emit("Add", name, &[&scaled, &shift], name, vec![]);
        Ok(())
    }
}

fn value_info(name: &str, dims: &[usize]) -> ValueInfoProto {
    let mut shape = vec![Dimension {
        value: Some(dimension::Value::DimParam(BATCH_DIM.to_owned())),
        ..Dimension::default()
    }];
    shape.extend(dims.iter().map(|&dim| Dimension {
        value: Some(dimension::Value::DimValue(dim as i64)),
        ..Dimension::default()
    }));
    ValueInfoProto {
        name: name.to_owned(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(TensorShapeProto { dim: shape }),
            })),
            ..TypeProto::default()
        }),
        ..ValueInfoProto::default()
    }
}

fn float_tensor(name: &str, shape: &[usize], values: &[f32]) -> TensorProto {
    TensorProto {
        name: name.to_owned(),
        dims: shape.iter().map(|&dim| dim as i64).collect(),
        data_type: DataType::Float as i32,
        raw_data: values.iter().flat_map(|value| value.to_le_bytes()).collect(),
        ..TensorProto::default()
    }
}

fn int64_tensor(name: &str, values: &[i64]) -> TensorProto {
    TensorProto {
        name: name.to_owned(),
        dims: vec![values.len() as i64],
        data_type: DataType::Int64 as i32,
        raw_data: values.iter().flat_map(|value| value.to_le_bytes()).collect(),
        ..TensorProto::default()
    }
}

fn int_attr(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.to_owned(),
        r#type: AttributeType::Int as i32,
        i: value,
        ..AttributeProto::default()
    }
}

fn float_attr(name: &str, value: f32) -> AttributeProto {
    AttributeProto {
        name: name.to_owned(),
        r#type: AttributeType::Float as i32,
        f: value,
        ..AttributeProto::default()
    }
}

fn ints_attr(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.to_owned(),
        r#type: AttributeType::Ints as i32,
        ints: values.to_vec(),
        ..AttributeProto::default()
    }
}

fn string_attr(name: &str, value: &str) -> AttributeProto {
    AttributeProto {
        name: name.to_owned(),
        r#type: AttributeType::String as i32,
        s: value.as_bytes().to_vec(),
        ..AttributeProto::default()
    }
}

#[cfg(test)]
mod tests {
    use models::ImageShape;
    use models::manifest::EXPORTED_OPS;

    use super::*;
    use crate::nets::{self, DataSpec, Widths};

    /// One of each graph op. `variant` is exhaustive, so a new op fails to compile here until it
    /// gets an index, and the test fails until it is in this list.
    fn one_of_each_op() -> Vec<Op> {
        vec![
            Op::Linear { in_dim: 2, out_dim: 3 },
            Op::Conv2d { in_channels: 1, out_channels: 2, kernel: 3, stride: 1, padding: 1 },
            Op::Upsample2x,
            Op::Silu,
            Op::LeakyRelu { alpha: 0.2 },
            Op::Tanh,
            Op::Concat,
            Op::Add,
            Op::Mul,
            Op::Scale { factor: 0.5 },
            Op::GroupNorm { groups: 2, channels: 4 },
            Op::MatMul,
            Op::Transpose,
            Op::Softmax,
            Op::RowSum,
            Op::Reshape { dims: vec![2, 2] },
            Op::Flatten,
            Op::TimestepEmbedding { dim: 4 },
            Op::BlockSoftmax { blocks: vec![(0, 2, true), (2, 1, false)] },
        ]
    }

    fn variant(op: &Op) -> usize {
        match op {
            Op::Linear { .. } => 0,
            Op::Conv2d { .. } => 1,
            Op::Upsample2x => 2,
            Op::Silu => 3,
            Op::LeakyRelu { .. } => 4,
            Op::Tanh => 5,
            Op::Concat => 6,
            Op::Add => 7,
            Op::Mul => 8,
            Op::RowSum => 9,
            Op::Reshape { .. } => 10,
            Op::Flatten => 11,
            Op::TimestepEmbedding { .. } => 12,
            Op::BlockSoftmax { .. } => 13,
            Op::Scale { .. } => 14,
            Op::GroupNorm { .. } => 15,
            Op::MatMul => 16,
            Op::Transpose => 17,
            Op::Softmax => 18,
        }
    }

    fn op_types(nodes: &[NodeProto]) -> Vec<String> {
        nodes.iter().map(|node| format!("{}:{}", node.domain, node.op_type)).collect()
    }

    #[test]
    fn every_exported_node_is_an_operator_the_edge_runtime_accepts() {
        let ops = one_of_each_op();
        let mut seen: Vec<usize> = ops.iter().map(variant).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..19).collect::<Vec<_>>(), "one of each op, each once");
        let mut writer = Writer::default();
        for (idx, op) in ops.iter().enumerate() {
            writer.node(&format!("n{idx}"), op, &["a".to_owned(), "b".to_owned()]).unwrap();
        }
        let mut written = op_types(&writer.nodes);

        // And the networks of each family, on a table and on images (convolutional).
        let widths = Widths {
            hidden: 8,
            latent_dim: 4,
            channels: 4,
            time_dim: 8,
            channel_mult: &[1, 2],
            res_blocks: 1,
            groups: 2,
        };
        let table = DataSpec { width: 5, n_classes: 2, blocks: Vec::new(), image: None };
        let image = |side: usize| DataSpec {
            width: side * side,
            n_classes: 10,
            blocks: Vec::new(),
            image: Some(ImageShape { channels: 1, height: side, width: side }),
        };
        // 16×16: the U-Net's lowest level is 8×8, so it has self-attention.
        for spec in [&table, &image(8), &image(16)] {
            for graph in [
                nets::generator(spec, &widths, false),
                nets::generator(spec, &widths, true),
                nets::denoiser(spec, &widths),
                nets::ae_decoder(spec, &widths),
            ] {
                let proto = model_proto(&graph, &[], "g").unwrap();
                assert_eq!(proto.opset_import.len(), 1);
                assert_eq!(proto.opset_import.first().map(|o| o.domain.as_str()), Some(""));
                written.extend(op_types(&proto.graph.unwrap().node));
            }
        }
        for op in &written {
            let op = op.strip_prefix(':').unwrap_or_else(|| panic!("{op}: not the default domain"));
            assert!(EXPORTED_OPS.contains(&op), "`{op}` is exported but not in EXPORTED_OPS");
        }
        // And the list holds nothing the exporter never writes.
        for op in EXPORTED_OPS {
            assert!(written.contains(&format!(":{op}")), "`{op}` is in EXPORTED_OPS but unused");
        }
    }
}
