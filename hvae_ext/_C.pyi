# Type stub of the compiled extension hvae_ext._C: importing it registers the torch.ops.hvae_ext operators;
# it has no Python attributes of its own (the ops are reached through torch.ops.hvae_ext and hvae_ext.special).
